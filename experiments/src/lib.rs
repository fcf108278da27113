//! `wow-experiments` holds one module per experiment of the IPOP and WOW papers
//! (latency, throughput, join, dhcp-join, multihop, ...): what to set up, what to
//! measure, and the figure the paper reported for comparison.
