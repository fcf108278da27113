//! `wow-harness` drives nodes on hosts (network namespaces or SSH hosts), runs the
//! experiments of `wow-experiments`, collects trials and writes result folders. It sees
//! nodes only through real tools and the node's status socket (black-box).
