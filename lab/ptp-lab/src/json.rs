//! Tiny JSON helpers for the one-object-per-line serial protocol.
//!
//! Output lines are either one JSON object (machine-readable) or start with `# `
//! (for humans); there is no allocator, so escaping happens while formatting.

use core::fmt::{self, Write};

/// Displays a `&str` as a JSON string literal (with quotes), escaping as needed.
pub struct Str<'a>(pub &'a str);

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        Escaper(&mut *f).write_str(self.0)?;
        f.write_char('"')
    }
}

/// Displays a `u64` as a JSON string holding a hex number (`"0x1f"`): JSON numbers
/// are not reliably 64-bit in consumers, and addresses read better in hex.
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{:#x}\"", self.0)
    }
}

/// A `fmt::Write` adapter that escapes everything written through it for use inside a
/// JSON string literal. Used for text we only get as `fmt::Arguments` (panic messages).
pub struct Escaper<W: Write>(pub W);

impl<W: Write> Write for Escaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A value that writes itself as JSON: the one way every record field, nested object and
/// list element reaches the output.
pub trait ToJson {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result;
}

/// What JSON a field holds, for readers that check a record's field types (`ptp-host facts`
/// lists it per field): the base type, and whether it may be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// `string`, `integer`, `number`, `bool`, `object`, `list`, or `any`.
    pub base: &'static str,
    pub nullable: bool,
}

impl Kind {
    pub const fn of(base: &'static str) -> Kind {
        Kind {
            base,
            nullable: false,
        }
    }
    pub const ANY: Kind = Kind::of("any");
    pub const STRING: Kind = Kind::of("string");
    pub const INTEGER: Kind = Kind::of("integer");
    pub const OBJECT: Kind = Kind::of("object");
    pub const LIST: Kind = Kind::of("list");
    /// Numbers the writer makes null when not finite.
    pub const NUMBER: Kind = Kind {
        base: "number",
        nullable: true,
    };
    pub const fn or_null(self) -> Kind {
        Kind {
            nullable: true,
            ..self
        }
    }
}

impl ToJson for Kind {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        let mut buf = crate::fixedstr::FixedStr::<16>::new();
        let _ = write!(buf, "{}{}", self.base, if self.nullable { "?" } else { "" });
        buf.as_str().write_json(w)
    }
}

/// The [`Kind`] of a field's type (what [`json_object!`] declares per field).
pub trait JsonKind {
    const KIND: Kind;
}

/// The kind a declaration's `=> f` conversion writes: that of `f`'s result.
pub const fn kind_of_ret<A: ?Sized, R: JsonKind>(_: fn(&A) -> R) -> Kind {
    R::KIND
}

macro_rules! kinds {
    ($kind:expr => $($t:ty),*) => { $(impl JsonKind for $t { const KIND: Kind = $kind; })* };
}
kinds!(Kind::STRING => str, fmt::Arguments<'_>, dyn fmt::Display + '_, Hex);
kinds!(Kind::INTEGER => u8, u16, u32, u64, usize, i8, i16, i32, i64);
kinds!(Kind::of("bool") => bool);
kinds!(Kind::NUMBER => f64, Shortest);
kinds!(Kind::ANY => dyn ToJson + '_, Raw<'_>);
kinds!(Kind::OBJECT => Fields<'_>);
impl<const N: usize> JsonKind for crate::fixedstr::FixedStr<N> {
    const KIND: Kind = Kind::STRING;
}
impl<const D: usize> JsonKind for Fixed<D> {
    const KIND: Kind = Kind::NUMBER;
}
impl<T: JsonKind + ?Sized> JsonKind for &T {
    const KIND: Kind = T::KIND;
}
impl<T: JsonKind> JsonKind for Option<T> {
    const KIND: Kind = T::KIND.or_null();
}
impl<T> JsonKind for [T] {
    const KIND: Kind = Kind::LIST;
}
impl<T, const N: usize> JsonKind for [T; N] {
    const KIND: Kind = Kind::LIST;
}
impl<T> JsonKind for Items<'_, T> {
    const KIND: Kind = Kind::LIST;
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        (**self).write_json(w)
    }
}

impl ToJson for str {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        write!(w, "{}", Str(self))
    }
}

impl<const N: usize> ToJson for crate::fixedstr::FixedStr<N> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.as_str().write_json(w)
    }
}

/// Text formatted while written, as a JSON string (no allocator for a `format!`).
impl ToJson for fmt::Arguments<'_> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        w.write_char('"')?;
        Escaper(&mut *w).write_fmt(*self)?;
        w.write_char('"')
    }
}

/// Anything displayable, as a JSON string (a panic's location).
impl ToJson for dyn fmt::Display + '_ {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        format_args!("{self}").write_json(w)
    }
}

macro_rules! display_json {
    ($($t:ty),*) => {
        $(impl ToJson for $t {
            fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
                write!(w, "{self}")
            }
        })*
    };
}
display_json!(bool, u8, u16, u32, u64, usize, i8, i16, i32, i64, Hex);

/// Ticks per op and the like: 3 decimals; non-finite values (no JSON for them) are null.
impl ToJson for f64 {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        Fixed::<3>(*self).write_json(w)
    }
}

/// A float with `D` decimals; non-finite values are null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed<const D: usize>(pub f64);

impl<const D: usize> ToJson for Fixed<D> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        if self.0.is_finite() {
            write!(w, "{:.*}", D, self.0)
        } else {
            w.write_str("null")
        }
    }
}

/// A float in the fewest digits that read back the same (`1`, `0.5`); non-finite values are
/// null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shortest(pub f64);

impl ToJson for Shortest {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        if self.0.is_finite() {
            write!(w, "{}", self.0)
        } else {
            w.write_str("null")
        }
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        match self {
            Some(v) => v.write_json(w),
            None => w.write_str("null"),
        }
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.iter().fold(List::open(w), |l, x| l.item(x)).close()
    }
}

impl<T: ToJson, const N: usize> ToJson for [T; N] {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self[..].write_json(w)
    }
}

/// Already-formatted JSON (a benchmark's `params` object).
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub fmt::Arguments<'a>);

impl ToJson for Raw<'_> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        w.write_fmt(self.0)
    }
}

/// A value written by a closure (which writes all of it, braces included).
pub struct With<F>(pub F);

impl<F: Fn(&mut dyn Write) -> fmt::Result> ToJson for With<F> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        (self.0)(w)
    }
}

/// A list of what an iterator yields. Written once: a second write finds the iterator spent
/// (`&self` cannot hold it mutably, hence the cell; a nested write is an error, not a panic).
pub struct Items<'a, T>(core::cell::RefCell<&'a mut dyn Iterator<Item = T>>);

impl<'a, T> Items<'a, T> {
    pub fn new(it: &'a mut dyn Iterator<Item = T>) -> Self {
        Items(core::cell::RefCell::new(it))
    }
}

impl<T: ToJson> ToJson for Items<'_, T> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        let mut it = self.0.try_borrow_mut().map_err(|_| fmt::Error)?;
        let it: &mut dyn Iterator<Item = T> = &mut **it;
        it.fold(List::open(w), |l, x| l.item(&x)).close()
    }
}

/// A flat object of named values, written through [`Obj`]: a benchmark's parameters, which
/// differ per benchmark and so have no declaration of their own. Built with [`params!`].
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    pub items: &'a [(&'a str, &'a dyn ToJson)],
}

impl Fields<'_> {
    pub const EMPTY: Fields<'static> = Fields { items: &[] };
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_json(f)
    }
}

impl ToJson for Fields<'_> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.items
            .iter()
            .fold(Obj::open(w), |o, (k, v)| o.field(k, *v))
            .close()
    }
}

/// `params! { "pages": n, "page_size": size.name() }`: a [`Fields`] object.
#[macro_export]
macro_rules! params {
    ($($k:literal : $v:expr),* $(,)?) => {
        $crate::json::Fields {
            items: &[$(($k, &$v as &dyn $crate::json::ToJson)),*],
        }
    };
}

/// For declarations whose field type is not how it is written: `rip: u64 => hex`.
pub fn hex(v: &u64) -> Hex {
    Hex(*v)
}

pub fn shortest(v: &f64) -> Shortest {
    Shortest(*v)
}

pub fn opt_shortest(v: &Option<f64>) -> Option<Shortest> {
    v.map(Shortest)
}

pub fn opt_hex(v: &Option<u64>) -> Option<Hex> {
    v.map(Hex)
}

/// Linux's load averages: 2 decimals, as `/proc/loadavg` gives them.
pub fn dec2(v: &f64) -> Fixed<2> {
    Fixed(*v)
}

/// A JSON object being written: `Obj::open(w).field("a", &1).field("b", "x").close()`, or a
/// record line, `Obj::new(w, "check")...end()`. Write errors are remembered, not raised at
/// each field: output goes to a serial line that cannot fail in a way the caller could handle.
#[must_use = "an object is written only up to its last field until closed"]
pub struct Obj<'w> {
    w: &'w mut dyn Write,
    result: fmt::Result,
    first: bool,
}

impl<'w> Obj<'w> {
    /// A nested object: `{` and its fields.
    pub fn open(w: &'w mut dyn Write) -> Self {
        let result = w.write_char('{');
        Obj {
            w,
            result,
            first: true,
        }
    }

    /// A record: `{"type":ty` and its fields, closed with [`Obj::end`].
    pub fn new(w: &'w mut dyn Write, ty: &str) -> Self {
        Obj::open(w).field("type", ty)
    }

    pub fn field<T: ToJson + ?Sized>(mut self, k: &str, v: &T) -> Self {
        if self.result.is_ok() {
            let sep = if self.first { "" } else { "," };
            self.first = false;
            self.result = write!(self.w, "{sep}{}:", Str(k)).and_then(|()| v.write_json(self.w));
        }
        self
    }

    /// `}` (a nested object).
    pub fn close(self) -> fmt::Result {
        self.result?;
        self.w.write_char('}')
    }

    /// `}` and the end of the line (a record).
    pub fn end(self) -> fmt::Result {
        self.result?;
        self.w.write_str("}\n")
    }
}

/// A JSON list written element by element: `List::open(w).item(&a).item(&b).close()`.
#[must_use = "a list is written only up to its last item until closed"]
pub struct List<'w> {
    w: &'w mut dyn Write,
    result: fmt::Result,
    first: bool,
}

impl<'w> List<'w> {
    pub fn open(w: &'w mut dyn Write) -> Self {
        let result = w.write_char('[');
        List {
            w,
            result,
            first: true,
        }
    }

    pub fn item<T: ToJson + ?Sized>(mut self, v: &T) -> Self {
        if self.result.is_ok() {
            if !self.first {
                self.result = self.w.write_char(',');
            }
            self.first = false;
            self.result = self.result.and_then(|()| v.write_json(self.w));
        }
        self
    }

    pub fn close(self) -> fmt::Result {
        self.result?;
        self.w.write_char(']')
    }
}

/// One declaration for a JSON object type: the struct (with its docs), `FIELDS` (its keys in
/// the order written), `fields` (writes them into an [`Obj`]) and [`ToJson`]. A field's key is
/// its name unless given (`pub imp as "impl": &'a str`); `=> f` writes `f(&field)` instead of
/// the field (`pub rip: u64 => hex`).
///
/// ```ignore
/// json_object! {
///     /// One CPU that came up.
///     #[derive(Debug, Clone, Copy)]
///     pub struct CpuUp {
///         pub cpu: u32,
///         pub apic_id: u32,
///     }
/// }
/// ```
#[macro_export]
macro_rules! json_object {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$lt:lifetime>)? {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident $(as $key:literal)? : $fty:ty $(=> $with:path)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name $(<$lt>)? {
            $( $(#[$fmeta])* $fvis $field: $fty, )*
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            /// The keys, in the order written.
            #[allow(dead_code)] // private nested types: only their writer is used
            pub const FIELDS: &'static [&'static str] =
                &[$($crate::json_object!(@key $field $($key)?)),*];

            /// What JSON each field holds, in the order of [`Self::FIELDS`].
            #[allow(dead_code)]
            pub const KINDS: &'static [$crate::json::Kind] =
                &[$($crate::json_object!(@kind $fty $(, $with)?)),*];

            /// Write every field into `o`, in declaration order.
            pub fn fields<'w>(&self, o: $crate::json::Obj<'w>) -> $crate::json::Obj<'w> {
                $(
                    let v = &self.$field;
                    $(let v = &$with(v);)?
                    let o = o.field($crate::json_object!(@key $field $($key)?), v);
                )*
                o
            }
        }

        impl $(<$lt>)? $crate::json::ToJson for $name $(<$lt>)? {
            fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
                self.fields($crate::json::Obj::open(w)).close()
            }
        }

        impl $(<$lt>)? $crate::json::JsonKind for $name $(<$lt>)? {
            const KIND: $crate::json::Kind = $crate::json::Kind::OBJECT;
        }
    };
    (@kind $fty:ty) => { <$fty as $crate::json::JsonKind>::KIND };
    (@kind $fty:ty, $with:path) => { $crate::json::kind_of_ret::<$fty, _>($with) };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
}

/// [`json_object!`] for a record type: also its `TYPE` and `write` (one line, `type` first).
#[macro_export]
macro_rules! json_record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$lt:lifetime>)? = $ty:literal $body:tt
    ) => {
        $crate::json_object! { $(#[$meta])* $vis struct $name $(<$lt>)? $body }

        impl $(<$lt>)? $name $(<$lt>)? {
            /// The record's `type`.
            pub const TYPE: &'static str = $ty;

            /// Write the record as one line.
            pub fn write(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
                self.fields($crate::json::Obj::new(w, Self::TYPE)).end()
            }
        }
    };
}
