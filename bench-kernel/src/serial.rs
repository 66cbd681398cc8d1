//! COM1 console via `uart_16550` and the `print!`/`println!` macros. Every line that starts
//! with `# ` (the human lines) also goes to the screen (`screen`), for machines read by eye.
//!
//! Single core, interrupts off: the only re-entrancy is an exception (or panic)
//! raised while a print is in progress. A `BUSY` flag detects that case, and the
//! re-entrant printer then uses a fresh, un-initialised handle on the same port
//! instead of aliasing the global one, so reports always get out and nothing
//! deadlocks.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550, Uart16550Tty, Uart16550TtyError};

use crate::sync::RacyCell;

/// I/O port base of COM1.
pub const COM1_PORT: u16 = 0x3f8;

type Tty = Uart16550Tty<PioBackend>;

static CONSOLE: RacyCell<Option<Tty>> = RacyCell::new(None);
static BUSY: AtomicBool = AtomicBool::new(false);

type Line = ptp_lab::fixedstr::FixedStr<256>;
static LINE: RacyCell<Line> = RacyCell::new(Line::new());
static EMERGENCY_LINE: RacyCell<Line> = RacyCell::new(Line::new());

/// Writes through to the serial port and collects lines; a finished `# ` line is drawn on the
/// screen (longer lines are cut there, never on serial).
struct Tee<'a> {
    out: &'a mut dyn Write,
    line: &'a mut Line,
}

impl Write for Tee<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let result = self.out.write_str(s);
        let mut rest = s;
        while let Some(i) = rest.find('\n') {
            let _ = self.line.write_str(&rest[..i]);
            if let Some(text) = self.line.as_str().strip_prefix("# ") {
                // SAFETY: the console lock (BUSY) or the ending fault path is held.
                unsafe { crate::screen::line(text.trim_end_matches('\r')) };
            }
            *self.line = Line::new();
            rest = &rest[i + 1..];
        }
        let _ = self.line.write_str(rest);
        result
    }
}

/// Initialise COM1 (115200 8N1, FIFO on) and run the UART loopback self-test.
pub fn init() -> Result<(), Uart16550TtyError> {
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    // SAFETY: COM1 is a standard port range owned by this kernel alone.
    let tty = unsafe { Uart16550Tty::new_port(COM1_PORT, config)? };
    BUSY.store(true, Ordering::SeqCst);
    // SAFETY: BUSY held, so no other reference to CONSOLE exists.
    unsafe { *CONSOLE.get() = Some(tty) };
    BUSY.store(false, Ordering::SeqCst);
    Ok(())
}

/// `fmt::Write` over the serial console: where records go.
pub struct SerialOut;

impl Write for SerialOut {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        with_console(|w| w.write_str(s))
    }
}

/// Run `f` with a writer to COM1.
pub fn with_console<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    if BUSY.swap(true, Ordering::SeqCst) {
        // Re-entered from an exception/panic that interrupted a print: use a
        // separate handle on the already configured device.
        // SAFETY: the re-entrant path (a fault report, which ends the run) has its own line.
        let line = unsafe { &mut *EMERGENCY_LINE.get() };
        return f(&mut Tee {
            out: &mut emergency_writer(),
            line,
        });
    }
    // SAFETY: BUSY was false and is now held by us: no other reference exists.
    let console = unsafe { &mut *CONSOLE.get() };
    // SAFETY: BUSY held: this is the only user of LINE.
    let line = unsafe { &mut *LINE.get() };
    let result = match console {
        Some(tty) => f(&mut Tee { out: tty, line }),
        None => f(&mut Tee {
            out: &mut emergency_writer(),
            line,
        }),
    };
    BUSY.store(false, Ordering::SeqCst);
    result
}

/// Writer that needs no global state: a handle on COM1 that skips initialisation
/// (whatever state the device is in, QEMU and real 16550s still transmit).
fn emergency_writer() -> impl Write {
    // SAFETY: COM1 port range; constructing the handle does not touch the device.
    match unsafe { Uart16550::new_port(COM1_PORT) } {
        Ok(uart) => EmergencyWriter(Some(Tty::from_inner(uart))),
        Err(_) => EmergencyWriter(None),
    }
}

struct EmergencyWriter(Option<Tty>);

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match &mut self.0 {
            Some(tty) => tty.write_str(s),
            None => Err(fmt::Error),
        }
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    with_console(|w| {
        let _ = w.write_fmt(args);
    });
}

/// Wait until the UART has sent everything, so an exit right after a print loses
/// nothing. (QEMU transmits synchronously, real hardware does not.)
pub fn flush() {
    // Line status register, bit 6: transmitter empty. Bounded so a missing UART
    // cannot hang the exit path.
    let mut lsr = x86_64::instructions::port::PortReadOnly::<u8>::new(COM1_PORT + 5);
    for _ in 0..100_000 {
        // SAFETY: reading the LSR has no side effects beyond clearing error bits.
        if unsafe { lsr.read() } & 0x40 != 0 {
            break;
        }
        core::hint::spin_loop();
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::serial::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::serial::_print(format_args!("{}\n", format_args!($($arg)*))));
}
