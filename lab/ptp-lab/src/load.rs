//! The machine's load when a run starts and ends (noise evidence: a busy machine explains a
//! slow run). The host reads `/proc/loadavg`; the kernel is alone on its CPU and reports none.

use crate::json::dec2;

crate::json_object! {
    /// Linux's load averages and the runnable tasks at the moment read.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Load {
        pub avg_1m: f64 => dec2,
        pub avg_5m: f64 => dec2,
        pub avg_15m: f64 => dec2,
        /// Tasks runnable at that moment (the reader itself included).
        pub runnable: u32,
    }
}

impl Load {
    /// Parses the text of `/proc/loadavg` ("0.52 0.58 0.59 2/345 12345"); `None` for anything
    /// else.
    pub fn parse(text: &str) -> Option<Load> {
        let mut it = text.split_ascii_whitespace();
        let mut avg = || -> Option<f64> {
            let v: f64 = it.next()?.parse().ok()?;
            (v.is_finite() && v >= 0.0).then_some(v)
        };
        let (avg_1m, avg_5m, avg_15m) = (avg()?, avg()?, avg()?);
        let runnable = it.next()?.split('/').next()?.parse().ok()?;
        Some(Load {
            avg_1m,
            avg_5m,
            avg_15m,
            runnable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::ToJson;

    #[test]
    fn parses_proc_loadavg_and_refuses_anything_else() {
        let l = Load::parse("0.52 1.58 12.00 3/345 12345\n").unwrap();
        assert_eq!(
            l,
            Load {
                avg_1m: 0.52,
                avg_5m: 1.58,
                avg_15m: 12.0,
                runnable: 3
            }
        );
        let mut s = crate::fixedstr::FixedStr::<128>::new();
        l.write_json(&mut s).unwrap();
        assert_eq!(
            s.as_str(),
            r#"{"avg_1m":0.52,"avg_5m":1.58,"avg_15m":12.00,"runnable":3}"#
        );
        for bad in [
            "",
            "0.5 0.5",
            "0.5 0.5 x 1/2 3",
            "0.5 0.5 0.5",
            "-1 0 0 1/2 3",
            "NaN 0 0 1/2 3",
            "0 0 0 a/2 3",
        ] {
            assert_eq!(Load::parse(bad), None, "{bad:?}");
        }
    }
}
