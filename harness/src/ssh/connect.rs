//! Opening an authenticated session: TCP (or a tunnel through a jump host), handshake,
//! host key check against `known_hosts`, then key-file or agent authentication. Every
//! failure becomes an [`Error`] that says what to check.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ssh2::{CheckResult, KnownHostFileKind, Session};

use super::tunnel::Tunnel;
use super::{Auth, Error, HostKeyCheck, Target};

/// libssh2's error codes we give advice for.
const ERROR_TIMEOUT: i32 = -9;
const ERROR_FILE: i32 = -16;
const ERROR_AUTHENTICATION_FAILED: i32 = -18;
const ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;

/// Serialises read-modify-write of `known_hosts` files across threads.
static KNOWN_HOSTS: Mutex<()> = Mutex::new(());

/// One authenticated session and the socket under it.
pub(super) struct Conn {
    /// The session (blocking mode unless an operation switched it).
    pub(super) session: Session,
    /// The socket libssh2 talks through, to wait on in non-blocking mode.
    fd: RawFd,
    /// The jump host's tunnel, if any; dropped after the session.
    _tunnel: Option<Tunnel>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("fd", &self.fd).finish()
    }
}

impl Conn {
    /// The socket under the session, to wait on.
    pub(super) fn socket(&self) -> BorrowedFd<'_> {
        // SAFETY: the session owns the socket and closes it only when dropped, after
        // this borrow of `self` ends.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

/// Connects to `target` and logs in.
pub(super) fn connect(target: &Target) -> Result<Conn, Error> {
    let mut session = Session::new().map_err(|e| Error::Handshake {
        target: target.label(),
        reason: format!("cannot create an SSH session: {e}"),
    })?;
    let (fd, tunnel) = match &target.jump {
        None => {
            let tcp = tcp_connect(target)?;
            let fd = tcp.as_raw_fd();
            session.set_tcp_stream(tcp);
            (fd, None)
        }
        Some(jump) => {
            let (stream, tunnel) = Tunnel::open(jump, &target.address, target.port)?;
            let fd = stream.as_raw_fd();
            session.set_tcp_stream(stream);
            (fd, Some(tunnel))
        }
    };
    session.set_timeout(millis(target.connect_timeout));
    session.handshake().map_err(|e| {
        if e.code() == ssh2::ErrorCode::Session(ERROR_TIMEOUT) {
            Error::Connect {
                target: target.label(),
                reason: format!(
                    "the SSH handshake got no answer within {:?} (is an SSH server listening there?)",
                    target.connect_timeout
                ),
            }
        } else {
            Error::Handshake {
                target: target.label(),
                reason: format!("SSH handshake failed: {e}"),
            }
        }
    })?;
    check_host_key(&session, target)?;
    authenticate(&session, target)?;
    Ok(Conn {
        session,
        fd,
        _tunnel: tunnel,
    })
}

/// Milliseconds for libssh2's timeouts (0 would mean none).
pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn tcp_connect(target: &Target) -> Result<TcpStream, Error> {
    let fail = |reason: String| Error::Connect {
        target: target.label(),
        reason,
    };
    let addrs: Vec<_> = (target.address.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve {:?}: {e}", target.address)))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, target.connect_timeout) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    let reason = match last {
        None => format!("{:?} resolves to no address", target.address),
        Some(e) => match e.kind() {
            ErrorKind::ConnectionRefused => format!(
                "connection refused (is sshd running and listening on port {}?)",
                target.port
            ),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => format!(
                "no answer within {:?} (host down, or a firewall drops port {})",
                target.connect_timeout, target.port
            ),
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                format!("{e} (no route to the host from here; does it need a jump host?)")
            }
            _ => e.to_string(),
        },
    };
    Err(fail(reason))
}

fn check_host_key(session: &Session, target: &Target) -> Result<(), Error> {
    let policy = &target.host_key;
    if policy.check == HostKeyCheck::Off {
        return Ok(());
    }
    let fail = |reason: String| Error::Handshake {
        target: target.label(),
        reason,
    };
    let (key, key_type) = session
        .host_key()
        .ok_or_else(|| fail("the server sent no host key".into()))?;
    let file = &policy.known_hosts;
    let _guard = KNOWN_HOSTS.lock().unwrap_or_else(|p| p.into_inner());
    let mut known = session
        .known_hosts()
        .map_err(|e| fail(format!("cannot check host keys: {e}")))?;
    if file.exists() {
        known
            .read_file(file, KnownHostFileKind::OpenSSH)
            .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
    }
    let entry = if target.port == 22 {
        target.address.clone()
    } else {
        format!("[{}]:{}", target.address, target.port)
    };
    match known.check_port(&target.address, target.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(fail(format!(
            "HOST KEY CHANGED: the key does not match {} (someone may be intercepting, or the \
             host was reinstalled); if the change is expected, remove the old entry with \
             `ssh-keygen -f {} -R '{entry}'`",
            file.display(),
            file.display()
        ))),
        CheckResult::NotFound if policy.check == HostKeyCheck::AcceptNew => {
            known
                .add(&entry, key, "added by wow-bench", key_type.into())
                .map_err(|e| fail(format!("cannot record the host key: {e}")))?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
            }
            known
                .write_file(file, KnownHostFileKind::OpenSSH)
                .map_err(|e| fail(format!("cannot write {}: {e}", file.display())))
        }
        CheckResult::NotFound => Err(fail(format!(
            "unknown host key and host_key_check = \"strict\": add it with \
             `ssh-keyscan -p {} {} >> {}` (after checking it), or use \"accept-new\"",
            target.port,
            target.address,
            file.display()
        ))),
        CheckResult::Failure => Err(fail(format!(
            "cannot check the host key against {}",
            file.display()
        ))),
    }
}

fn authenticate(session: &Session, target: &Target) -> Result<(), Error> {
    let fail = |reason: String| Error::Auth {
        target: target.label(),
        reason,
    };
    let user = target.user.as_str();
    match &target.auth {
        Auth::KeyFile(path) => {
            check_key_file(path).map_err(fail)?;
            session
                .userauth_pubkey_file(user, None, path, None)
                .map_err(|e| fail(key_error(&e, path, target)))?;
        }
        Auth::Agent => {
            if std::env::var_os("SSH_AUTH_SOCK").is_none() {
                return Err(fail(
                    "agent = true, but SSH_AUTH_SOCK is not set: start ssh-agent and `ssh-add` \
                     your key, or set `key` to a key file"
                        .into(),
                ));
            }
            let mut agent = session
                .agent()
                .map_err(|e| fail(format!("cannot use ssh-agent: {e}")))?;
            agent
                .connect()
                .and_then(|()| agent.list_identities())
                .map_err(|e| fail(format!("cannot talk to ssh-agent: {e}")))?;
            let identities = agent
                .identities()
                .map_err(|e| fail(format!("cannot list ssh-agent identities: {e}")))?;
            if identities.is_empty() {
                return Err(fail(
                    "ssh-agent holds no key: add one with `ssh-add`".into(),
                ));
            }
            if !identities.iter().any(|id| agent.userauth(user, id).is_ok()) {
                return Err(fail(format!(
                    "the server refused all {} ssh-agent identities for user {user:?}: add one \
                     of their public keys to ~{user}/.ssh/authorized_keys on the host",
                    identities.len()
                )));
            }
        }
    }
    if session.authenticated() {
        Ok(())
    } else {
        Err(fail("the server did not accept the login".into()))
    }
}

/// Refuses a missing or unreadable key file with advice.
fn check_key_file(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
            "key file {} does not exist: create one with `ssh-keygen -t ed25519 -f {}` and add \
             {}.pub to ~/.ssh/authorized_keys on the host, or set agent = true",
            path.display(),
            path.display(),
            path.display()
        )),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(format!(
            "cannot read key file {}: permission denied (run as the key's owner)",
            path.display()
        )),
        Err(e) => Err(format!("cannot read key file {}: {e}", path.display())),
    }
}

fn key_error(e: &ssh2::Error, path: &Path, target: &Target) -> String {
    match e.code() {
        ssh2::ErrorCode::Session(ERROR_AUTHENTICATION_FAILED | ERROR_PUBLICKEY_UNVERIFIED) => {
            format!(
                "the server refused key {} for user {:?}: add {}.pub to \
                 ~{}/.ssh/authorized_keys on the host (e.g. `ssh-copy-id -i {} -p {} {}@{}`), and check \
                 `user`",
                path.display(),
                target.user,
                path.display(),
                target.user,
                path.display(),
                target.port,
                target.user,
                target.address
            )
        }
        ssh2::ErrorCode::Session(ERROR_FILE) => format!(
            "cannot use key file {} ({e}): it may be passphrase-protected or in an unsupported \
             format; load it into ssh-agent and set agent = true",
            path.display()
        ),
        _ => format!("with key {}: {e}", path.display()),
    }
}
