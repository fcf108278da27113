//! The TAP device: a layer-2 virtual interface the host's IP stack and DHCP client use.

use anyhow::{Context, Result};
use tun_rs::{AsyncDevice, DeviceBuilder, Layer};

/// Creates TAP device `name` with `mtu`, up, and returns it with its MAC address.
pub fn open(name: &str, mtu: u16) -> Result<AsyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .layer(Layer::L2)
        .mtu(mtu)
        .enable(true)
        .build_async()
        .with_context(|| {
            format!(
                "cannot create TAP device {name:?} (/dev/net/tun): run as root or grant CAP_NET_ADMIN (setcap cap_net_admin+ep ipop-node)"
            )
        })
}
