//! Process metrics read from the platform at scrape time.

use prometheus_client::registry::Registry;

#[cfg(target_os = "linux")]
mod linux {
    use prometheus_client::{
        collector::Collector,
        encoding::{DescriptorEncoder, EncodeMetric},
        metrics::{counter::ConstCounter, gauge::ConstGauge},
    };

    /// Reads `/proc/self` on every scrape (procfs does the parsing).
    #[derive(Debug)]
    pub(super) struct ProcessCollector;

    impl Collector for ProcessCollector {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            let Ok(me) = procfs::process::Process::myself() else {
                return Ok(());
            };
            let ticks = procfs::ticks_per_second() as f64;
            let page = procfs::page_size();
            if let Ok(stat) = me.stat() {
                let cpu = (stat.utime + stat.stime) as f64 / ticks;
                let counter = ConstCounter::new(cpu);
                counter.encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    "User and system CPU time spent",
                    None,
                    counter.metric_type(),
                )?)?;
                let rss = ConstGauge::new((stat.rss * page) as i64);
                rss.encode(encoder.encode_descriptor(
                    "process_resident_memory_bytes",
                    "Resident memory size",
                    None,
                    rss.metric_type(),
                )?)?;
                let vsz = ConstGauge::new(stat.vsize as i64);
                vsz.encode(encoder.encode_descriptor(
                    "process_virtual_memory_bytes",
                    "Virtual memory size",
                    None,
                    vsz.metric_type(),
                )?)?;
                if let Ok(boot) = procfs::boot_time_secs() {
                    let start = ConstGauge::new(boot as f64 + stat.starttime as f64 / ticks);
                    start.encode(encoder.encode_descriptor(
                        "process_start_time_seconds",
                        "Start time of the process since the Unix epoch",
                        None,
                        start.metric_type(),
                    )?)?;
                }
            }
            if let Ok(fds) = me.fd_count() {
                let open = ConstGauge::new(fds as i64);
                open.encode(encoder.encode_descriptor(
                    "process_open_fds",
                    "Open file descriptors",
                    None,
                    open.metric_type(),
                )?)?;
            }
            if let Ok(limits) = me.limits() {
                if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                    let max = ConstGauge::new(max as i64);
                    max.encode(encoder.encode_descriptor(
                        "process_max_fds",
                        "Maximum open file descriptors",
                        None,
                        max.metric_type(),
                    )?)?;
                }
            }
            Ok(())
        }
    }
}

pub(crate) fn register(registry: &mut Registry) {
    #[cfg(target_os = "linux")]
    registry.register_collector(Box::new(linux::ProcessCollector));
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}
