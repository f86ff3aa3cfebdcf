//! Logs through `tracing` (JSON by default), metrics through the OpenTelemetry SDK
//! with a Prometheus exporter behind `/metrics`, spans through [`crate::trace`].

use std::sync::Arc;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};
use tracing_subscriber::EnvFilter;

use crate::config::TelemetryConfig;

/// Handle on the process's metrics; cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    service: &'static str,
    tracer: crate::trace::Tracer,
}

impl Telemetry {
    /// A meter provider exporting into a fresh Prometheus registry. Each service
    /// (and each in-process test instance) gets its own, so figures never mix.
    /// Its tracer propagates trace context and records no spans.
    pub fn new(service: &'static str) -> anyhow::Result<Telemetry> {
        Telemetry::with_tracer(service, crate::trace::Tracer::propagating(1.0))
    }

    /// [`Telemetry::new`] with the given tracer (one that exports, in tests).
    pub fn with_tracer(
        service: &'static str,
        tracer: crate::trace::Tracer,
    ) -> anyhow::Result<Telemetry> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()?;
        let provider = SdkMeterProvider::builder()
            .with_resource(Resource::builder().with_service_name(service).build())
            .with_reader(exporter)
            .build();
        Ok(Telemetry {
            inner: Arc::new(Inner {
                registry,
                provider,
                service,
                tracer,
            }),
        })
    }

    pub fn meter(&self) -> Meter {
        self.inner.provider.meter(self.inner.service)
    }

    /// The tracer: `send` / `process` spans and trace-context propagation.
    pub fn tracer(&self) -> &crate::trace::Tracer {
        &self.inner.tracer
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.inner.registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

/// Installs the global `tracing` subscriber. Safe to call more than once
/// (later calls are ignored), which in-process tests rely on.
pub fn init_logging(cfg: &TelemetryConfig) {
    let filter = EnvFilter::try_new(&cfg.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cfg.log_format == "pretty" {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}

/// What every service's `main` does first: logs, then its own metrics and
/// tracer (exporting spans when `telemetry.otlp_endpoint` is set).
pub fn start(cfg: &TelemetryConfig, service: &'static str) -> anyhow::Result<Telemetry> {
    init_logging(cfg);
    let tracer =
        crate::trace::Tracer::from_config(service, &cfg.otlp_endpoint, cfg.trace_sample_ratio)?;
    if tracer.is_exporting() {
        tracing::info!(endpoint = %cfg.otlp_endpoint, ratio = cfg.trace_sample_ratio, "exporting spans over OTLP/HTTP");
    }
    Telemetry::with_tracer(service, tracer)
}
