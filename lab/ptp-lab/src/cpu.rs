//! CPU facts (via `raw-cpuid`) that benchmark results depend on, the TSC frequency from CPUID
//! where available, and the leaf-fill path this CPU and OS allow. Shared by the bench kernel,
//! the host runner and the criterion driver.

use raw_cpuid::{cpuid, CpuId};

use crate::fixedstr::FixedStr;
use vystem_ptp::Fill;

/// Where a TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID 0x15: crystal clock x TSC/crystal ratio (exact, Intel).
    Cpuid15,
    /// Hypervisor leaf 0x40000010 EAX (kHz; VMware/KVM/QEMU convention).
    Hypervisor,
    /// CPUID 0x16: nominal base frequency in MHz (approximate).
    Cpuid16,
}

impl TscSource {
    pub fn name(self) -> &'static str {
        match self {
            TscSource::Cpuid15 => "cpuid_0x15",
            TscSource::Hypervisor => "hypervisor_0x40000010",
            TscSource::Cpuid16 => "cpuid_0x16_base",
        }
    }
}

crate::json_object! {
    /// The CPU's own facts (the TSC frequency a run uses, and its source, are the run's).
    #[derive(Clone, Copy, Debug)]
    pub struct CpuFacts {
        pub vendor: FixedStr<12>,
        pub brand: FixedStr<48>,
        pub family: u8,
        pub model: u8,
        pub stepping: u8,
        /// Raw signature of leaf 0x40000000 when the hypervisor bit is set.
        pub hypervisor: Option<FixedStr<12>>,
        pub invariant_tsc: bool,
        pub pcid: bool,
        pub invpcid: bool,
        pub pge: bool,
        pub pages_1g: bool,
        pub x2apic: bool,
        pub rdtscp: bool,
        pub nx: bool,
        pub avx2: bool,
        /// The OS saves SSE and AVX state (CPUID.1:ECX.OSXSAVE and XCR0 bits 1, 2).
        pub os_saves_ymm: bool,
        pub tsc_hz_cpuid15: Option<u64>,
        pub tsc_hz_hypervisor: Option<u64>,
        pub base_hz_cpuid16: Option<u64>,
    }
}

impl CpuFacts {
    pub fn detect() -> Self {
        let id = CpuId::new();
        let vendor = id
            .get_vendor_info()
            .map(|v| FixedStr::from_bytes_lossy(v.as_str().as_bytes()).0)
            .unwrap_or_default();
        let brand = id
            .get_processor_brand_string()
            .map(|b| FixedStr::from_bytes_lossy(b.as_str().trim().as_bytes()).0)
            .unwrap_or_default();
        let features = id.get_feature_info();
        let ext = id.get_extended_processor_and_feature_identifiers();
        let has_hv = features.as_ref().is_some_and(|f| f.has_hypervisor());

        let hypervisor = has_hv.then(|| {
            // Raw signature, not raw-cpuid's enum: unknown hypervisors still show up.
            let r = cpuid!(0x4000_0000);
            let mut sig = [0u8; 12];
            sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
            sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
            sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
            let len = sig.iter().position(|&b| b == 0).unwrap_or(12);
            FixedStr::from_bytes_lossy(&sig[..len]).0
        });

        Self {
            vendor,
            brand,
            family: features.as_ref().map_or(0, |f| f.family_id()),
            model: features.as_ref().map_or(0, |f| f.model_id()),
            stepping: features.as_ref().map_or(0, |f| f.stepping_id()),
            hypervisor,
            invariant_tsc: id
                .get_advanced_power_mgmt_info()
                .is_some_and(|a| a.has_invariant_tsc()),
            pcid: features.as_ref().is_some_and(|f| f.has_pcid()),
            invpcid: id
                .get_extended_feature_info()
                .is_some_and(|e| e.has_invpcid()),
            pge: features.as_ref().is_some_and(|f| f.has_pge()),
            pages_1g: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
            x2apic: features.as_ref().is_some_and(|f| f.has_x2apic()),
            rdtscp: ext.as_ref().is_some_and(|e| e.has_rdtscp()),
            nx: ext.as_ref().is_some_and(|e| e.has_execute_disable()),
            avx2: id.get_extended_feature_info().is_some_and(|e| e.has_avx2()),
            os_saves_ymm: features.as_ref().is_some_and(|f| f.has_oxsave()) && {
                use x86_64::registers::xcontrol::{XCr0, XCr0Flags};
                // XGETBV is allowed: OSXSAVE says CR4.OSXSAVE is set.
                XCr0::read().contains(XCr0Flags::SSE | XCr0Flags::AVX)
            },
            tsc_hz_cpuid15: id.get_tsc_info().and_then(|t| t.tsc_frequency()),
            tsc_hz_hypervisor: id
                .get_hypervisor_info()
                .and_then(|h| h.tsc_frequency())
                .filter(|&khz| khz != 0)
                .map(|khz| u64::from(khz) * 1000),
            base_hz_cpuid16: id
                .get_processor_frequency_info()
                .map(|p| u64::from(p.processor_base_frequency()) * 1_000_000)
                .filter(|&hz| hz != 0),
        }
    }

    /// Best CPUID-reported TSC frequency: exact sources first, nominal base last.
    pub fn tsc_hz(&self) -> Option<(u64, TscSource)> {
        self.tsc_hz_cpuid15
            .map(|hz| (hz, TscSource::Cpuid15))
            .or(self.tsc_hz_hypervisor.map(|hz| (hz, TscSource::Hypervisor)))
            .or(self.base_hz_cpuid16.map(|hz| (hz, TscSource::Cpuid16)))
    }

    /// The leaf-fill path for the mapper: AVX2 where the CPU has it and the OS saves its state.
    pub fn fill(&self) -> Fill {
        if self.avx2 && self.os_saves_ymm {
            // SAFETY: both conditions of `Fill::avx2` were just read from CPUID and XCR0.
            unsafe { Fill::avx2() }
        } else {
            Fill::SSE2
        }
    }
}
