# Sourced by the workloads' self-tests (lss-mpi/nfs-check.sh, nfs-session/check.sh):
# an NFS server for a test in a network namespace.
#
# ganesha_start NS DIR TAG
#   Writes DIR/ganesha.conf exporting DIR/export (NFSv3 over TCP, root kept: the
#   configuration experiments/src/cluster/nfs.rs writes) and starts rpcbind and
#   nfs-ganesha in network namespace NS, with a private /run (a tmpfs named TAG in a
#   private mount namespace). Sets GANESHA_PID (ip, unshare and the shell exec, so it
#   is ganesha's own PID); rpcbind's PID is written to DIR/rpcbind.pid, the server's
#   output to DIR/server.out, its log to DIR/ganesha.log.
ganesha_start() {
    local ns=$1 dir=$2 tag=$3
    cat >"$dir/ganesha.conf" <<CONF
NFS_CORE_PARAM { Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; Enable_RQUOTA = false; }
NFSV4 { Graceless = true; RecoveryRoot = $dir/ganesha-recovery; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
  Export_Id = 1; Path = $dir/export; Pseudo = $dir/export;
  Access_Type = RW; Squash = No_Root_Squash; Protocols = 3; Transports = TCP;
  SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
CONF
    ip netns exec "$ns" unshare --mount --propagation private sh -c "
        mount -t tmpfs -o mode=755 $tag /run || exit 1
        rpcbind -f -w & echo \$! > $dir/rpcbind.pid
        sleep 1
        exec ganesha.nfsd -F -f $dir/ganesha.conf -L $dir/ganesha.log -p $dir/ganesha.pid
    " >"$dir/server.out" 2>&1 &
    GANESHA_PID=$!
}
