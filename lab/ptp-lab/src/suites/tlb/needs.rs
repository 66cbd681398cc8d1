//! What every TLB benchmark needs: ring 0 and one pool size, and the CPU feature it times.

use crate::platform::{reason, Reason};
use crate::suites::base::{needs_ring0, Ctx};

pub(in crate::suites) fn feature(has: bool, why: &str) -> Result<(), Reason> {
    if has {
        Ok(())
    } else {
        Err(reason(format_args!("{why}")))
    }
}

/// Ring 0, NX (the self-map), and one pool size: TLB costs do not depend on the pool's size.
pub(in crate::suites) fn needs_tlb(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    needs_ring0(ctx)?;
    let first = ctx.cfg.pools()[0];
    if ctx.pages() != first {
        return Err(reason(format_args!(
            "TLB costs do not depend on the pool size: measured once, with the pool of {first} pages"
        )));
    }
    Ok(())
}
