//! `hosts.toml`: the machines `wow-bench deploy` runs nodes on. [`HostsFile::load`]
//! returns hosts that passed every check; any failure is a [`HostsError`] naming the
//! file, line, column and reason. See `harness/FLEET.md` for the format.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipop_core::text::Located;
use toml::Spanned;

use super::raw;
use crate::ssh::{Auth, HostKeyCheck, HostKeyPolicy, SshHost, Target};

/// Default SSH connect (and, separately, authentication) timeout.
const CONNECT_TIMEOUT: f64 = 10.0;
/// Default work dir, relative to the home folder; `{name}` is the host's name, so that
/// hosts sharing a home folder (NFS) do not collide.
pub const DEFAULT_WORK_DIR: &str = ".wow-bench/{name}";
/// Default UDP and TCP port of the node.
const NODE_PORT: i64 = ipop_api::DEFAULT_PORT as i64;
/// Flags deploy sets itself (through the generated config), refused in `node_args`.
const RESERVED_FLAGS: [&str; 4] = [
    "--config",
    "--control-socket",
    "--address-file",
    "--bootstrap",
];

/// A validated hosts file.
#[derive(Debug, Clone, PartialEq)]
pub struct HostsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Overlay-wide settings.
    pub overlay: OverlaySettings,
    /// The hosts, in file order.
    pub hosts: Vec<HostSpec>,
}

/// The `[overlay]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySettings {
    /// Overlay name (nodes of different overlays refuse each other).
    pub name: String,
    /// The nodes' log filter.
    pub log_level: String,
    /// The overlay's admission secret on this machine (made by the first deploy): every
    /// node gets a copy and makes secure edges. None: plain edges (`insecure = true`).
    pub secret_file: Option<PathBuf>,
}

/// One `[[host]]`, with `[defaults]` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    /// Its name in tables, records and result folders.
    pub name: String,
    /// How to log in.
    pub target: Target,
    /// What it is for.
    pub roles: Vec<Role>,
    /// Where deploy puts its files (relative paths are under the home folder).
    pub work_dir: String,
    /// The node's UDP port.
    pub udp_port: u16,
    /// The node's TCP port.
    pub tcp_port: u16,
    /// Extra `ipop-node` flags for this host.
    pub node_args: Vec<String>,
}

impl HostSpec {
    /// Logs in (see [`SshHost::connect`]).
    pub fn connect(&self) -> Result<SshHost, crate::ssh::Error> {
        SshHost::connect(&self.name, &self.target, &self.work_dir)
    }

    /// Whether it has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// What a host is for. Every host runs a node; bootstrap hosts start first and the
/// others join through them. `router` and `client` are tags for experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Others bootstrap from its node.
    Bootstrap,
    /// Routes for machines behind it (experiments put VMs or services behind it).
    Router,
    /// Runs workloads.
    Client,
}

impl Role {
    /// The name used in hosts files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bootstrap => "bootstrap",
            Role::Router => "router",
            Role::Client => "client",
        }
    }

    fn from_name(name: &str) -> Option<Role> {
        [Role::Bootstrap, Role::Router, Role::Client]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// Why a hosts file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostsError {
    /// The file could not be read.
    #[error("{file}: cannot read hosts file: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has unknown keys, or holds an impossible value.
    #[error(transparent)]
    Invalid(#[from] Located),
}

impl HostsFile {
    /// Reads and validates a hosts file. Relative key and `known_hosts` paths are taken
    /// relative to the file's folder; `~/` is the local home folder.
    pub fn load(path: &Path) -> Result<HostsFile, HostsError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HostsError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut hosts = HostsFile::parse(&text, &file, base)?;
        hosts.path = path.to_path_buf();
        Ok(hosts)
    }

    /// Validates hosts-file text; `file` names it in errors, `base` anchors relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<HostsFile, HostsError> {
        let raw: raw::File = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            Located::new(text, file, at, e.message())
        })?;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let ctx = Context {
            base,
            home: home.as_deref(),
        };
        ctx.validate(raw)
            .map(|(overlay, hosts)| HostsFile {
                path: PathBuf::from(file),
                overlay,
                hosts,
            })
            .map_err(|e| Located::new(text, file, e.span.start, e.reason).into())
    }

    /// The hosts with `role`.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &HostSpec> {
        self.hosts.iter().filter(move |h| h.has(role))
    }
}

struct Invalid {
    span: Range<usize>,
    reason: String,
}

fn err<T>(span: Range<usize>, reason: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        span,
        reason: reason.into(),
    })
}

struct Context<'a> {
    base: &'a Path,
    home: Option<&'a Path>,
}

impl Context<'_> {
    fn validate(&self, file: raw::File) -> Result<(OverlaySettings, Vec<HostSpec>), Invalid> {
        let overlay = self.overlay(file.overlay)?;
        let defaults = file.defaults.unwrap_or_default();
        if let Some(jump) = &defaults.jump {
            self.check_jump_name(jump, &file.jump)?;
        }
        let mut names = HashSet::new();
        for j in &file.jump {
            check_name(&j.name, "jump host", &mut names)?;
            check_address(&j.address)?;
        }
        if file.host.is_empty() {
            return err(0..0, "no [[host]]: add at least one (name, address, roles)");
        }
        let mut hosts = Vec::new();
        let mut bootstrap = false;
        for raw_host in file.host {
            let (name, address, roles, settings) = raw_host.split();
            check_name(&name, "host", &mut names)?;
            check_address(&address)?;
            let roles = parse_roles(&roles)?;
            bootstrap |= roles.contains(&Role::Bootstrap);
            let pick = |own: &Option<Spanned<String>>, def: &Option<Spanned<String>>| {
                own.as_ref().or(def.as_ref()).cloned()
            };
            let jump = match pick(&settings.jump, &defaults.jump) {
                None => None,
                Some(j) if j.get_ref().is_empty() => None,
                Some(j) => {
                    let raw_jump = self.check_jump_name(&j, &file.jump)?;
                    Some(Box::new(self.jump_target(raw_jump, &defaults)?))
                }
            };
            let target = Target {
                address: address.get_ref().clone(),
                port: port(settings.port.as_ref().or(defaults.port.as_ref()), 22)?,
                user: user(pick(&settings.user, &defaults.user), name.span())?,
                auth: self.auth(&settings, &defaults, name.span())?,
                jump,
                host_key: self.host_key(&settings, &defaults)?,
                connect_timeout: connect_timeout(
                    settings
                        .connect_timeout_s
                        .as_ref()
                        .or(defaults.connect_timeout_s.as_ref()),
                )?,
            };
            let work_dir = work_dir(pick(&settings.work_dir, &defaults.work_dir), name.get_ref())?;
            let node_args = node_args(settings.node_args.or(defaults.node_args.clone()))?;
            hosts.push(HostSpec {
                name: name.into_inner(),
                target,
                roles,
                work_dir,
                udp_port: port(
                    settings.udp_port.as_ref().or(defaults.udp_port.as_ref()),
                    NODE_PORT,
                )?,
                tcp_port: port(
                    settings.tcp_port.as_ref().or(defaults.tcp_port.as_ref()),
                    NODE_PORT,
                )?,
                node_args,
            });
        }
        if !bootstrap {
            return err(
                0..0,
                "no host has role \"bootstrap\": add roles = [\"bootstrap\"] to the host(s) \
                 whose node the others should join through",
            );
        }
        Ok((overlay, hosts))
    }

    fn check_jump_name<'j>(
        &self,
        name: &Spanned<String>,
        jumps: &'j [raw::Jump],
    ) -> Result<&'j raw::Jump, Invalid> {
        match jumps.iter().find(|j| j.name.get_ref() == name.get_ref()) {
            Some(j) => Ok(j),
            None => err(
                name.span(),
                format!(
                    "no [[jump]] named {:?}: define it (name, address, user, key) or remove `jump`",
                    name.get_ref()
                ),
            ),
        }
    }

    fn jump_target(&self, jump: &raw::Jump, defaults: &raw::Settings) -> Result<Target, Invalid> {
        let settings = raw::Settings {
            key: jump.key.clone(),
            agent: jump.agent.clone(),
            ..raw::Settings::default()
        };
        Ok(Target {
            address: jump.address.get_ref().clone(),
            port: port(jump.port.as_ref().or(defaults.port.as_ref()), 22)?,
            user: user(
                jump.user.clone().or(defaults.user.clone()),
                jump.name.span(),
            )?,
            auth: self.auth(&settings, defaults, jump.name.span())?,
            jump: None,
            host_key: self.host_key(&raw::Settings::default(), defaults)?,
            connect_timeout: connect_timeout(defaults.connect_timeout_s.as_ref())?,
        })
    }

    /// `key` or `agent`: the host's own choice, else the defaults'; not both at one level.
    fn auth(
        &self,
        own: &raw::Settings,
        defaults: &raw::Settings,
        at: Range<usize>,
    ) -> Result<Auth, Invalid> {
        for level in [own, defaults] {
            let agent = level.agent.as_ref().is_some_and(|a| *a.get_ref());
            match (&level.key, agent) {
                (Some(key), true) => {
                    return err(key.span(), "set either `key` or `agent = true`, not both");
                }
                (Some(key), false) => {
                    if key.get_ref().trim().is_empty() {
                        return err(key.span(), "empty key path");
                    }
                    return Ok(Auth::KeyFile(self.path(key.get_ref())));
                }
                (None, true) => return Ok(Auth::Agent),
                (None, false) => {}
            }
        }
        err(
            at,
            "no credentials: set key = \"~/.ssh/id_ed25519\" (a private key file) or agent = true, \
             here or in [defaults]",
        )
    }

    fn host_key(
        &self,
        own: &raw::Settings,
        defaults: &raw::Settings,
    ) -> Result<HostKeyPolicy, Invalid> {
        let known = own.known_hosts.as_ref().or(defaults.known_hosts.as_ref());
        let known_hosts = match known {
            Some(k) if k.get_ref().trim().is_empty() => return err(k.span(), "empty path"),
            Some(k) => self.path(k.get_ref()),
            None => self.path("~/.ssh/known_hosts"),
        };
        let check = match own
            .host_key_check
            .as_ref()
            .or(defaults.host_key_check.as_ref())
        {
            None => HostKeyCheck::AcceptNew,
            Some(c) => match HostKeyCheck::from_name(c.get_ref()) {
                Some(c) => c,
                None => {
                    return err(
                        c.span(),
                        format!(
                            "unknown host_key_check {:?}: use \"strict\", \"accept-new\" or \"off\"",
                            c.get_ref()
                        ),
                    );
                }
            },
        };
        Ok(HostKeyPolicy { known_hosts, check })
    }

    /// `~/x` under the local home, relative paths under the hosts file's folder.
    fn path(&self, p: &str) -> PathBuf {
        match (p.strip_prefix("~/"), self.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => self.base.join(p),
        }
    }
}

impl Context<'_> {
    fn overlay(&self, raw: Option<raw::Overlay>) -> Result<OverlaySettings, Invalid> {
        let raw = raw.unwrap_or(raw::Overlay {
            name: None,
            log_level: None,
            secret_file: None,
            insecure: None,
        });
        let name = match raw.name {
            Some(n) if n.get_ref().is_empty() || n.get_ref().contains(char::is_whitespace) => {
                return err(
                    n.span(),
                    "the overlay name must be non-empty without spaces",
                );
            }
            Some(n) => n.into_inner(),
            None => "wow".into(),
        };
        let log_level = match raw.log_level {
            Some(l) if l.get_ref().trim().is_empty() || l.get_ref().contains(['"', '\n']) => {
                return err(
                    l.span(),
                    "log_level must be a filter such as \"info\" or \"info,ipop_core=debug\"",
                );
            }
            Some(l) => l.into_inner(),
            None => "info".into(),
        };
        let secret_file = match (raw.insecure, raw.secret_file) {
            (Some(true), Some(f)) => {
                return err(
                    f.span(),
                    "secret_file and insecure = true exclude each other",
                );
            }
            (Some(true), None) => None,
            (_, Some(f)) if f.get_ref().trim().is_empty() => {
                return err(f.span(), "secret_file must name a file");
            }
            (_, Some(f)) => Some(self.path(f.get_ref())),
            (_, None) => Some(self.path(&format!("{name}.secret"))),
        };
        Ok(OverlaySettings {
            name,
            log_level,
            secret_file,
        })
    }
}

fn check_name(
    name: &Spanned<String>,
    what: &str,
    taken: &mut HashSet<String>,
) -> Result<(), Invalid> {
    let n = name.get_ref();
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return err(
            name.span(),
            format!("{what} name {n:?}: use 1-64 letters, digits, '-', '_' or '.'"),
        );
    }
    if !taken.insert(n.clone()) {
        return err(name.span(), format!("duplicate name {n:?}"));
    }
    Ok(())
}

fn check_address(address: &Spanned<String>) -> Result<(), Invalid> {
    let a = address.get_ref();
    if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '@' || c == '/') {
        return err(
            address.span(),
            format!(
                "address {a:?}: give a host name or IP address only (user and port are separate keys)"
            ),
        );
    }
    Ok(())
}

fn parse_roles(roles: &[Spanned<String>]) -> Result<Vec<Role>, Invalid> {
    let mut out = Vec::new();
    for r in roles {
        match Role::from_name(r.get_ref()) {
            Some(role) if out.contains(&role) => {
                return err(r.span(), format!("role {:?} given twice", r.get_ref()));
            }
            Some(role) => out.push(role),
            None => {
                return err(
                    r.span(),
                    format!(
                        "unknown role {:?}: use \"bootstrap\", \"router\" or \"client\"",
                        r.get_ref()
                    ),
                );
            }
        }
    }
    Ok(out)
}

fn port(value: Option<&Spanned<i64>>, default: i64) -> Result<u16, Invalid> {
    let Some(v) = value else {
        return Ok(u16::try_from(default).unwrap_or(22));
    };
    match u16::try_from(*v.get_ref()) {
        Ok(p) if p > 0 => Ok(p),
        _ => err(v.span(), format!("port {} is not in 1-65535", v.get_ref())),
    }
}

fn user(value: Option<Spanned<String>>, at: Range<usize>) -> Result<String, Invalid> {
    match value {
        None => err(at, "no user: set `user` here or in [defaults]"),
        Some(u)
            if u.get_ref().is_empty()
                || !u
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            err(
                u.span(),
                format!("user {:?} is not a valid login name", u.get_ref()),
            )
        }
        Some(u) => Ok(u.into_inner()),
    }
}

fn connect_timeout(value: Option<&Spanned<f64>>) -> Result<Duration, Invalid> {
    let secs = value.map_or(CONNECT_TIMEOUT, |v| *v.get_ref());
    if !(0.1..=600.0).contains(&secs) {
        return err(
            value.map_or(0..0, Spanned::span),
            format!("connect_timeout_s {secs} is not in 0.1-600"),
        );
    }
    Ok(Duration::from_secs_f64(secs))
}

fn work_dir(value: Option<Spanned<String>>, name: &str) -> Result<String, Invalid> {
    let Some(v) = value else {
        return Ok(DEFAULT_WORK_DIR.replace("{name}", name));
    };
    let dir = v.get_ref().replace("{name}", name);
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty()
        || trimmed == "."
        || trimmed.starts_with('~')
        || trimmed.split('/').any(|c| c == "..")
        || dir.contains(['\n', '\0'])
    {
        return err(
            v.span(),
            format!(
                "work_dir {:?}: give a folder, absolute or relative to the home folder (no \
                 '~', no '..', not / or the home folder itself)",
                v.get_ref()
            ),
        );
    }
    Ok(trimmed.to_string())
}

fn node_args(value: Option<Spanned<Vec<String>>>) -> Result<Vec<String>, Invalid> {
    let Some(v) = value else {
        return Ok(Vec::new());
    };
    if let Some(bad) = v.get_ref().iter().find(|a| {
        RESERVED_FLAGS
            .iter()
            .any(|f| a.split('=').next() == Some(*f))
    }) {
        return err(
            v.span(),
            format!(
                "node_args must not set {bad}: deploy sets it in the generated config (use \
                 udp_port, tcp_port, [overlay] or other flags)"
            ),
        );
    }
    Ok(v.into_inner())
}

#[cfg(test)]
#[path = "hosts_file_tests.rs"]
mod tests;
