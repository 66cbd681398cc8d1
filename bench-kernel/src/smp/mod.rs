//! Symmetric multiprocessing: find the CPUs (ACPI MADT, else the MP table), start each application processor
//! (INIT-SIPI-SIPI through the local APIC, the real-mode trampoline, its own stack, GDT, TSS and
//! IST stacks, SSE), measure its TSC against the boot CPU's, and serve the shootdown IPIs the
//! `tlb` suite sends ([`Cpus`] is the lab's `Smp`).
//!
//! Only the boot CPU sends; only the APs take interrupts (they idle in `hlt` with interrupts
//! on, or spin in a timed loop when the suite measures what an IPI costs its target). An AP
//! that does not answer within a bound is reported and left out, never waited for.

pub mod apic;
mod trampoline;

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ptp_lab::acpi::{self, MAX_CPUS};
use ptp_lab::json::List;
use ptp_lab::platform::{Reason, Smp, TargetReport, Work, reason};
use ptp_lab::record::{self, CpuStart};
use ptp_lab::tsc;
use vystem_ptp::Decision;
use vystem_ptp::shootdown::CpuSet;
use x86_64::VirtAddr;
use x86_64::instructions::interrupts;
use x86_64::registers::control::Cr3;
use x86_64::registers::model_specific::{Efer, EferFlags};

use crate::bootinfo::{BootInfo, IDENTITY_MAP_END};
use crate::cpu::{set_this_cpu, this_cpu};
use crate::gdt::MAX_APS;
use crate::irq::{self, IPI_VECTOR};
use crate::sync::RacyCell;

/// Each AP's stack.
const AP_STACK_SIZE: usize = 64 * 1024;
/// How long an AP has to come up after its SIPIs, and a target to acknowledge an IPI.
const START_BOUND_MS: u64 = 200;
const ACK_BOUND_MS: u64 = 2000;
/// Round trips of the TSC handshake; the one with the shortest round trip gives the offset.
const SYNC_ROUNDS: u64 = 16;

#[repr(C, align(16))]
struct Stack([u8; AP_STACK_SIZE]);
static AP_STACKS: RacyCell<[Stack; MAX_APS]> =
    RacyCell::new([const { Stack([0; AP_STACK_SIZE]) }; MAX_APS]);

/// One CPU's requests and answers, on its own cache line.
#[repr(C, align(64))]
struct Mailbox {
    /// The request number the sender wrote last, and the last one this CPU finished.
    seq: AtomicU64,
    ack: AtomicU64,
    handled: AtomicU64,
    /// The probe byte it read (u64::MAX: none).
    seen: AtomicU64,
    /// Busy mode: the ticks its loop lost to request `lost_seq`.
    lost: AtomicU64,
    lost_seq: AtomicU64,
    work: RacyCell<Work>,
}

static MAIL: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        seq: AtomicU64::new(0),
        ack: AtomicU64::new(0),
        handled: AtomicU64::new(0),
        seen: AtomicU64::new(u64::MAX),
        lost: AtomicU64::new(0),
        lost_seq: AtomicU64::new(0),
        work: RacyCell::new(Work::NOTHING),
    }
}; MAX_CPUS];

static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];
static UP: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static BUSY: AtomicBool = AtomicBool::new(false);
/// Test builds: the AP of this index hangs before it announces itself (`ap_hang=N`).
static HANG: AtomicU64 = AtomicU64::new(u64::MAX);
static SYNC_PHASE: AtomicU64 = AtomicU64::new(0);
static SYNC_TSC: AtomicU64 = AtomicU64::new(0);

/// Spin until `done` or `ticks` have passed; whether `done` came true.
fn wait(ticks: u64, done: impl Fn() -> bool) -> bool {
    let t0 = tsc::now();
    while !done() {
        if tsc::now().wrapping_sub(t0) > ticks {
            return done();
        }
        core::hint::spin_loop();
    }
    true
}

/// The CPUs after bring-up, as the lab's `Smp`: the TSC rate (for bounds) and the set up.
pub struct Cpus {
    hz: AtomicU64,
    up: AtomicU64,
}

static CPUS: Cpus = Cpus {
    hz: AtomicU64::new(1_000_000_000),
    up: AtomicU64::new(1),
};

/// Start every CPU the MADT lists (up to the lab's maximum), write the `smp` record, and
/// return the CPUs that came up. `tsc_hz` times the INIT-SIPI delays and the bounds; `hang`
/// (tests) is the index of an AP to make hang.
pub fn start(
    info: &BootInfo,
    cpu: &ptp_lab::cpu::CpuFacts,
    tsc_hz: u64,
    hang: Option<u64>,
) -> &'static Cpus {
    let out = &mut crate::serial::SerialOut;
    let ms = tsc_hz / 1000;
    // SAFETY: ring 0, boot CPU, on the boot tables.
    unsafe {
        apic::choose(cpu.x2apic);
        apic::enable_here();
    }
    // Before any AP exists, so every IPI finds its handler.
    irq::set_ipi_handler(on_ipi);
    let mode = if apic::x2apic() { "x2apic" } else { "xapic" };
    let bsp = apic::id();
    APIC_IDS[0].store(bsp, Ordering::Relaxed);
    UP[0].store(true, Ordering::Release);
    HANG.store(hang.unwrap_or(u64::MAX), Ordering::Relaxed);
    let mut starts = [CpuStart {
        cpu: 0,
        apic_id: bsp,
        up: true,
        tsc_offset_ticks: Some(0),
        detail: "boot CPU",
    }; MAX_CPUS];
    let cpus = &CPUS;
    cpus.hz.store(tsc_hz, Ordering::Relaxed);
    let read = |at: u64, buf: &mut [u8]| {
        let fits = at
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= IDENTITY_MAP_END);
        if fits {
            // SAFETY: inside the boot identity map; firmware tables are plain bytes.
            unsafe { core::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) };
        }
        fits
    };
    // ACPI's MADT; firmware without ACPI may still have Intel's MP table (`acpi=off`, as
    // Linux spells it, goes straight there).
    let acpi_off = info.arg("acpi") == Some("off");
    let listed = (if acpi_off {
        Err(acpi::AcpiError::NoRsdp)
    } else {
        acpi::find_rsdp(&read, info.rsdp_paddr)
    })
    .and_then(|r| acpi::madt(&read, r))
    .map(|m| ("madt", m))
    .or_else(|e| {
        acpi::mp_table(&read, logical_per_package())
            .map(|m| ("mp", m))
            .map_err(|mp| (e, mp))
    });
    let (source, madt) = match listed {
        Ok(found) => found,
        Err((acpi_error, mp_error)) => {
            let mut why = Reason::new();
            let _ = core::fmt::Write::write_fmt(
                &mut why,
                format_args!("boot CPU only: {acpi_error}; {mp_error}"),
            );
            starts[0].detail = why.as_str();
            let _ = record::SmpRecord {
                source: "none",
                apic: mode,
                found: 1,
                left_out: 0,
                online_capable: 0,
                cpus: &starts[..1],
            }
            .write(out);
            return cpus;
        }
    };
    let page = info
        .low_free_page(0x8000)
        .or_else(|| info.low_free_page(0x1000));
    let efer_extra = if Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
        EferFlags::NO_EXECUTE_ENABLE.bits()
    } else {
        0
    };
    let mut n = 1usize;
    for &id in madt.apic_ids().iter().filter(|&&id| id != bsp) {
        if n > MAX_APS {
            break;
        }
        let idx = n;
        n += 1;
        APIC_IDS[idx].store(id, Ordering::Relaxed);
        let s = &mut starts[idx];
        *s = CpuStart {
            cpu: idx as u32,
            apic_id: id,
            up: false,
            tsc_offset_ticks: None,
            detail: "",
        };
        let Some(page) = page else {
            s.detail = "no free page below 1 MiB for the start-up trampoline";
            continue;
        };
        // SAFETY: AP_STACKS slot idx-1 belongs to this AP alone.
        let stack_top =
            unsafe { (&raw const (*AP_STACKS.get())[idx - 1]) as u64 } + AP_STACK_SIZE as u64;
        let launch = trampoline::Launch {
            cr3: Cr3::read().0.start_address().as_u64(),
            stack_top,
            arg: idx as u64,
            entry: ap_entry as *const () as u64,
            efer_extra,
        };
        SYNC_PHASE.store(0, Ordering::SeqCst);
        // SAFETY: a free low page (memory map, boot data excluded), used only while APs start.
        if let Err(e) = unsafe { trampoline::install(page, &launch) } {
            s.detail = e;
            continue;
        }
        apic::send(id, apic::INIT);
        wait(10 * ms, || false);
        for _ in 0..2 {
            apic::send(id, apic::startup(page));
            if wait(ms / 5, || UP[idx].load(Ordering::Acquire)) {
                break;
            }
        }
        if !wait(START_BOUND_MS * ms, || UP[idx].load(Ordering::Acquire)) {
            s.detail = "did not answer INIT-SIPI-SIPI within 200 ms: left out";
            continue;
        }
        s.up = true;
        s.tsc_offset_ticks = tsc_offset(ACK_BOUND_MS * ms);
        s.detail = if s.tsc_offset_ticks.is_some() {
            "started"
        } else {
            "started; the TSC handshake did not finish"
        };
        cpus.up.fetch_or(1 << idx, Ordering::Relaxed);
    }
    let found = madt.apic_ids().len() as u32;
    let left_out = madt.left_out + found.saturating_sub(n as u32);
    let _ = record::SmpRecord {
        source,
        apic: mode,
        found: found + madt.left_out,
        left_out,
        online_capable: madt.online_capable,
        cpus: &starts[..n],
    }
    .write(out);
    cpus
}

/// Logical processors per package, as CPUID reports them (1 without HTT).
fn logical_per_package() -> u32 {
    raw_cpuid::CpuId::new()
        .get_feature_info()
        .filter(|f| f.has_htt())
        .map_or(1, |f| u32::from(f.max_logical_processor_ids()))
}

/// The AP's TSC minus the boot CPU's, from the handshake round with the shortest round trip.
fn tsc_offset(bound: u64) -> Option<i64> {
    let mut best: Option<(u64, i64)> = None;
    for i in 0..SYNC_ROUNDS {
        let t0 = tsc::now();
        SYNC_PHASE.store(2 * i + 1, Ordering::SeqCst);
        if !wait(bound, || SYNC_PHASE.load(Ordering::SeqCst) == 2 * i + 2) {
            return None;
        }
        let t2 = tsc::now();
        let t1 = SYNC_TSC.load(Ordering::SeqCst);
        let rtt = t2.wrapping_sub(t0);
        let offset = t1 as i64 - (t0 + rtt / 2) as i64;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    best.map(|(_, o)| o)
}

/// An application processor, from the trampoline: its own GDT/TSS, the IDT, its index in GS,
/// its APIC; then it announces itself, answers the TSC handshake and idles.
extern "C" fn ap_entry(idx: u64) -> ! {
    // SAFETY: once, on this AP, with its own index (1..=MAX_APS).
    unsafe { crate::gdt::init_ap(idx as usize) };
    crate::idt::load_here();
    set_this_cpu(idx as u32);
    // SAFETY: ring 0; the boot CPU chose the mode.
    unsafe { apic::enable_here() };
    if HANG.load(Ordering::Relaxed) == idx {
        loop {
            interrupts::disable();
            x86_64::instructions::hlt();
        }
    }
    UP[idx as usize].store(true, Ordering::Release);
    for i in 0..SYNC_ROUNDS {
        if !wait(u64::MAX, || SYNC_PHASE.load(Ordering::SeqCst) == 2 * i + 1) {
            break;
        }
        SYNC_TSC.store(tsc::now(), Ordering::SeqCst);
        SYNC_PHASE.store(2 * i + 2, Ordering::SeqCst);
    }
    let mb = &MAIL[idx as usize];
    loop {
        if BUSY.load(Ordering::Acquire) {
            busy(mb);
        } else {
            interrupts::enable_and_hlt();
        }
    }
}

/// A timed loop with interrupts on: each step reads the TSC; a step during which a request was
/// handled (or the one after it) is longer than the quietest step by what the request cost.
fn busy(mb: &Mailbox) {
    interrupts::enable();
    let mut last = tsc::now();
    let mut quiet = u64::MAX;
    let mut handled = mb.handled.load(Ordering::Relaxed);
    let mut pending: Option<(u64, u64)> = None;
    while BUSY.load(Ordering::Relaxed) {
        let t = tsc::now();
        let gap = t.wrapping_sub(last);
        last = t;
        if let Some((g, seq)) = pending.take() {
            mb.lost
                .store(g.max(gap).saturating_sub(quiet), Ordering::Relaxed);
            mb.lost_seq.store(seq, Ordering::Release);
        }
        let h = mb.handled.load(Ordering::Relaxed);
        if h != handled {
            handled = h;
            pending = Some((gap, mb.ack.load(Ordering::Acquire)));
        } else if gap < quiet {
            quiet = gap;
        }
    }
}

/// The IPI, on an AP: run the request in its mailbox, acknowledge, end the interrupt.
fn on_ipi() {
    let mb = &MAIL[this_cpu() as usize % MAX_CPUS];
    let seq = mb.seq.load(Ordering::Acquire);
    // SAFETY: the sender wrote the request before publishing `seq`, and writes no other until
    // this CPU acknowledges it.
    let work = unsafe { *mb.work.get() };
    let seen = execute(&work);
    mb.seen
        .store(seen.map_or(u64::MAX, u64::from), Ordering::Relaxed);
    mb.handled.fetch_add(1, Ordering::Relaxed);
    mb.ack.store(seq, Ordering::Release);
    apic::eoi();
}

fn execute(work: &Work) -> Option<u8> {
    if let Some(frame) = work.cr3 {
        // SAFETY: the sender's tables map everything an AP touches (the kernel's identity).
        unsafe { Cr3::write(frame, Cr3::read().1) };
    }
    match work.flush {
        Decision::PerPage(n) => {
            for i in 0..n {
                x86_64::instructions::tlb::flush(VirtAddr::new(work.start + i * 4096));
            }
        }
        Decision::Full => x86_64::instructions::tlb::flush_all(),
        Decision::Nothing => {}
    }
    for i in 0..work.touch {
        // SAFETY: the sender names pages mapped readable in the loaded tables.
        unsafe { ((work.start + i * 4096) as *const u8).read_volatile() };
    }
    // SAFETY: as above.
    work.probe
        .map(|a| unsafe { (a as *const u8).read_volatile() })
}

ptp_lab::json_object! {
    /// A CPU that came up, in the run record's `cpus`.
    struct CpuUp {
        cpu: u32,
        apic_id: u32,
    }
}

impl Cpus {
    /// The run record's `cpus`: each CPU that came up, with its APIC ID.
    pub fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        self.up()
            .iter()
            .fold(List::open(w), |l, cpu| {
                l.item(&CpuUp {
                    cpu,
                    apic_id: APIC_IDS[cpu as usize].load(Ordering::Relaxed),
                })
            })
            .close()
    }
}

impl Smp for Cpus {
    fn up(&self) -> CpuSet {
        CpuSet(self.up.load(Ordering::Relaxed))
    }

    fn ipi(&self, targets: CpuSet, work: &Work) -> Result<u64, Reason> {
        if let Some(bad) = targets.iter().find(|&c| c == 0 || !self.up().contains(c)) {
            return Err(reason(format_args!(
                "CPU {bad} cannot be a target (not up, or the sender)"
            )));
        }
        let mut want = [0u64; MAX_CPUS];
        for c in targets.iter() {
            let mb = &MAIL[c as usize];
            // SAFETY: the target acknowledged its previous request (or had none): it reads
            // the mailbox again only after the next IPI.
            unsafe { *mb.work.get() = *work };
            want[c as usize] = mb.seq.load(Ordering::Relaxed) + 1;
            mb.seq.store(want[c as usize], Ordering::Release);
        }
        let t0 = tsc::now();
        for c in targets.iter() {
            apic::send(
                APIC_IDS[c as usize].load(Ordering::Relaxed),
                apic::fixed(IPI_VECTOR),
            );
        }
        let bound = ACK_BOUND_MS * (self.hz.load(Ordering::Relaxed) / 1000);
        for c in targets.iter() {
            let mb = &MAIL[c as usize];
            if !wait(bound, || mb.ack.load(Ordering::Acquire) == want[c as usize]) {
                self.up.fetch_and(!(1 << c), Ordering::Relaxed);
                return Err(reason(format_args!(
                    "CPU {c} did not acknowledge within {ACK_BOUND_MS} ms: left out from now on"
                )));
            }
        }
        let t1 = tsc::now();
        if BUSY.load(Ordering::Relaxed) {
            for c in targets.iter() {
                let mb = &MAIL[c as usize];
                wait(bound, || {
                    mb.lost_seq.load(Ordering::Acquire) == want[c as usize]
                });
            }
        }
        Ok(t1.wrapping_sub(t0))
    }

    fn report(&self, cpu: u32) -> TargetReport {
        let Some(mb) = MAIL.get(cpu as usize) else {
            return TargetReport::default();
        };
        let seen = mb.seen.load(Ordering::Relaxed);
        let busy = BUSY.load(Ordering::Relaxed);
        TargetReport {
            handled: mb.handled.load(Ordering::Relaxed),
            seen: u8::try_from(seen).ok(),
            lost_ticks: busy.then(|| mb.lost.load(Ordering::Relaxed)),
        }
    }

    fn set_busy(&self, busy: bool) {
        BUSY.store(busy, Ordering::Release);
        // Wake the idle ones so they see it (a halted CPU notices nothing until interrupted).
        let others = self.up().without(0);
        let _ = self.ipi(others, &Work::NOTHING);
    }
}
