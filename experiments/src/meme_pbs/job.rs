//! One glam2 job of a meme-pbs batch: its input, its PBS script, and what it left on the
//! file server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use wow_host::{Cmd, Host};

use super::GLAM2_ITERATIONS;
use crate::cluster::slurm::Slurm;
use crate::cluster::{Cluster, QUICK};
use crate::experiment::TrialError;

/// Sequences in the input.
const SEQUENCES: usize = 20;
/// Their length.
const LENGTH: usize = 300;
/// The motif planted in every sequence, with mutations.
const MOTIF: &[u8] = b"TTGACGTCAA";
/// Slurm states of a job that ended without success.
const FAILED: [&str; 8] = [
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
];

/// Where jobs keep things: folders on every workstation and the file server's URL.
#[derive(Debug, Clone)]
pub(super) struct Dirs {
    /// Job output logs (`#PBS -o`), on the node that ran the job.
    pub(super) logs: String,
    /// Per-job scratch folders, removed by the job.
    pub(super) scratch: String,
    /// The PBS scripts, on the head node.
    pub(super) scripts: String,
    /// `nfs://head/export`.
    pub(super) url: String,
}

/// A job ready to submit.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// Its name (`meme-<trial>-<k>`), also its files' stem on the file server.
    pub(super) name: String,
    /// Its script on the head node.
    pub(super) script_path: String,
    /// Its output log, on the node that runs it.
    pub(super) log: String,
    /// The script.
    pub(super) script: String,
}

impl Job {
    /// Job `k` of trial `trial`: `glam2 -r runs` with seed `k + 1`.
    pub(super) fn new(trial: u32, k: u32, runs: u32, dirs: &Dirs) -> Job {
        let name = format!("meme-{trial}-{k}");
        let (url, logs, scratch) = (&dirs.url, &dirs.logs, &dirs.scratch);
        let seed = k + 1;
        let script = format!(
            "#!/bin/sh\n\
             #PBS -N {name}\n\
             #PBS -j oe\n\
             #PBS -o {logs}/{name}.log\n\
             # A MEME-suite motif search (glam2) on input staged over NFS from the head node.\n\
             set -eu\n\
             now() {{ date +%s.%N; }}\n\
             cpu() {{ awk '{{print $16 + $17}}' /proc/$$/stat; }}\n\
             began=$(now)\n\
             scratch=$(mktemp -d {scratch}/{name}.XXXXXX)\n\
             trap 'rm -rf \"$scratch\"' EXIT\n\
             nfs-cp {url}/input.fa \"$scratch/input.fa\" >/dev/null\n\
             start=$(now)\n\
             cpu0=$(cpu)\n\
             nice -n 10 glam2 -o \"$scratch/glam2.txt\" -r {runs} -n {GLAM2_ITERATIONS} -s {seed} n \"$scratch/input.fa\" 2>/dev/null\n\
             end=$(now)\n\
             ticks=$(( $(cpu) - cpu0 ))\n\
             nfs-cp \"$scratch/glam2.txt\" {url}/out/{name}.txt >/dev/null\n\
             staged=$(now)\n\
             echo \"$(hostname) $began $start $end $staged $ticks $(getconf CLK_TCK)\" > \"$scratch/times\"\n\
             nfs-cp \"$scratch/times\" {url}/out/{name}.times >/dev/null\n"
        );
        Job {
            script_path: format!("{}/{name}.pbs", dirs.scripts),
            log: format!("{logs}/{name}.log"),
            name,
            script,
        }
    }
}

/// What a finished job left: where it ran and its clock readings (seconds since the
/// epoch), and its best motif's score.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Finished {
    pub(super) node: String,
    pub(super) submitted: f64,
    pub(super) began: f64,
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) staged: f64,
    /// glam2's CPU time (user + system): the job's run time alone on a dedicated core.
    pub(super) cpu: f64,
    pub(super) score: f64,
}

/// `glam2` on `input` with `runs` runs, writing `out`.
pub(super) fn glam2(input: &str, out: &str, runs: u32, seed: u32) -> Cmd {
    Cmd::new("glam2")
        .args(["-o", out, "-r"])
        .arg(runs.to_string())
        .args(["-n", &GLAM2_ITERATIONS.to_string(), "-s", &seed.to_string()])
        .args(["n", input])
}

/// The batch's input: FASTA of [`SEQUENCES`] random sequences of [`LENGTH`] nt, each
/// with a copy of [`MOTIF`] in which every base mutates with probability 0.3 (seeded).
pub(super) fn sequences(seed: u64) -> String {
    let mut state = seed ^ 0x6a09_e667_f3bc_c908;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let bases = b"ACGT";
    let mut fasta = String::new();
    for i in 0..SEQUENCES {
        let mut s: Vec<u8> = (0..LENGTH).map(|_| bases[(next() % 4) as usize]).collect();
        let at = (next() % (LENGTH - MOTIF.len()) as u64) as usize;
        for (j, &b) in MOTIF.iter().enumerate() {
            s[at + j] = if next() % 10 < 3 {
                bases[(next() % 4) as usize]
            } else {
                b
            };
        }
        fasta.push_str(&format!(">seq{i}\n{}\n", String::from_utf8_lossy(&s)));
    }
    fasta
}

/// Waits for every job of `jobs` (job, Slurm id, submit time) to leave its result on the
/// file server (`export/out`), then reads them. A job Slurm ends without success fails
/// the trial with the tail of its log.
pub(super) fn wait(
    slurm: &Slurm<'_>,
    cluster: &Cluster<'_>,
    export: &str,
    jobs: &[(Job, u64, f64)],
    timeout: Duration,
    bar: &ProgressBar,
) -> Result<Vec<Finished>, TrialError> {
    let head = cluster.head_host().map_err(|e| TrialError(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut last_check = Instant::now();
    let mut completed_since: BTreeMap<u64, Instant> = BTreeMap::new();
    loop {
        let listing = head.check(&Cmd::new("ls").arg(format!("{export}/out")), QUICK)?;
        let present: BTreeSet<String> = listing
            .stdout_text()
            .lines()
            .filter_map(|l| l.strip_suffix(".times").map(str::to_string))
            .collect();
        let done = jobs
            .iter()
            .filter(|(j, ..)| present.contains(&j.name))
            .count();
        bar.set_position(done as u64);
        if done == jobs.len() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(TrialError(format!(
                "{done} of {} jobs finished within {}s",
                jobs.len(),
                timeout.as_secs()
            )));
        }
        if last_check.elapsed() >= Duration::from_secs(5) {
            last_check = Instant::now();
            let states = slurm.jobs().map_err(|e| TrialError(e.to_string()))?;
            for (job, id, _) in jobs.iter().filter(|(j, ..)| !present.contains(&j.name)) {
                let Some((state, node)) = states.get(id) else {
                    continue;
                };
                let lost = state == "COMPLETED"
                    && completed_since
                        .entry(*id)
                        .or_insert_with(Instant::now)
                        .elapsed()
                        > Duration::from_secs(30);
                if FAILED.iter().any(|f| state.starts_with(f)) || lost {
                    return Err(TrialError(format!(
                        "job {} (Slurm {id}) ended {state} on {node} without its result: {}",
                        job.name,
                        log_tail(cluster, node, &job.name)
                    )));
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    jobs.iter()
        .map(|(job, _, submitted)| read(head, export, job, *submitted))
        .collect()
}

/// The end of job `name`'s log on `node`.
fn log_tail(cluster: &Cluster<'_>, node: &str, name: &str) -> String {
    let Ok(host) = cluster.host(node) else {
        return "no log (node unknown)".into();
    };
    let path = format!("{}/joblogs/{name}.log", cluster.dir);
    match host.read_file(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(5)..].join(" | ")
        }
        Err(e) => format!("no log: {e}"),
    }
}

/// Reads job `job`'s clock readings and output from the file server's disk.
fn read(head: &dyn Host, export: &str, job: &Job, submitted: f64) -> Result<Finished, TrialError> {
    let bad = |what: &str| TrialError(format!("job {}: {what}", job.name));
    let times = head.read_file(&format!("{export}/out/{}.times", job.name))?;
    let times = String::from_utf8_lossy(&times);
    let fields: Vec<&str> = times.split_whitespace().collect();
    let [node, rest @ ..] = fields.as_slice() else {
        return Err(bad("empty times file"));
    };
    let t: Vec<f64> = rest.iter().filter_map(|f| f.parse().ok()).collect();
    let [began, start, end, staged, ticks, hz] = t[..] else {
        return Err(bad(&format!("bad times file {times:?}")));
    };
    let output = head.read_file(&format!("{export}/out/{}.txt", job.name))?;
    let score = parse_score(&String::from_utf8_lossy(&output))
        .ok_or_else(|| bad("glam2's output has no motif (no `Score:` line)"))?;
    Ok(Finished {
        node: node.to_string(),
        submitted,
        began,
        start,
        end,
        staged,
        cpu: ticks / hz.max(1.0),
        score,
    })
}

/// The first motif's score in glam2's output (`Score: 152.982  Columns: 15 …`).
fn parse_score(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Score:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_is_seeded_fasta() {
        let a = sequences(7);
        assert_eq!(a, sequences(7));
        assert_ne!(a, sequences(8));
        assert_eq!(a.lines().count(), 2 * SEQUENCES);
        assert!(a.lines().skip(1).step_by(2).all(|l| l.len() == LENGTH));
    }

    #[test]
    fn scripts_stage_over_nfs_and_record_times() {
        let dirs = Dirs {
            logs: "/t/logs".into(),
            scratch: "/t/scratch".into(),
            scripts: "/t/scripts".into(),
            url: "nfs://ufl-0/t/export".into(),
        };
        let job = Job::new(0, 4, 3, &dirs);
        assert_eq!(job.script_path, "/t/scripts/meme-0-4.pbs");
        assert!(job.script.contains("#PBS -N meme-0-4\n"));
        assert!(job.script.contains("nfs-cp nfs://ufl-0/t/export/input.fa"));
        assert!(
            job.script
                .contains("glam2 -o \"$scratch/glam2.txt\" -r 3 -n 10000 -s 5 n")
        );
        assert!(
            job.script
                .ends_with("nfs://ufl-0/t/export/out/meme-0-4.times >/dev/null\n")
        );
    }

    #[test]
    fn scores_parse_from_glam2_output() {
        let out = "GLAM2\n\nScore: 152.982  Columns: 15  Sequences: 20\n\n";
        assert_eq!(parse_score(out), Some(152.982));
        assert_eq!(parse_score("nothing"), None);
    }
}
