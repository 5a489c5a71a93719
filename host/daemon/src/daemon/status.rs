//! What `/api/v1/status` shows: each service's last pass, the policy
//! version in force, and the files and modules that failed to load.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::snapshot::effective_params;

use crate::audit::{PluginRecord, Scores};
use crate::clock::{format_time, now_ms};
use crate::policy::ReadyPolicy;
use crate::state::LastDecision;

/// A failed policy file or module, as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadErrorView {
    /// The file.
    pub path: String,
    /// The stage that failed.
    pub stage: String,
    /// Why.
    pub message: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// A `.wasm` file in a watched folder.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleView {
    /// What it is, when it passed every stage.
    pub plugin: Option<PluginRecord>,
    /// The stage and message, when it did not.
    pub error: Option<String>,
}

/// The shadow policy's last decision.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowView {
    /// The shadow plugin.
    pub plugin: PluginRecord,
    /// Its decision's direction.
    pub direction: vedfolnir_core::Direction,
    /// Its target.
    pub target: u32,
    /// Its scores.
    pub scores: Option<Scores>,
    /// Whether it differs from the live decision.
    pub diverges: bool,
    /// Passes where it differed, since the daemon started.
    pub divergences: u64,
}

/// One service, as the status API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceStatus {
    /// The policy file.
    pub policy_file: String,
    /// The live plugin: the policy version in force.
    pub plugin: Option<PluginRecord>,
    /// When that version was loaded.
    pub policy_loaded: String,
    /// Running replicas, at the last pass.
    pub replicas: Option<u32>,
    /// Ready replicas, at the last pass.
    pub ready: Option<u32>,
    /// Each signal's newest value, or why it is missing.
    pub signals: BTreeMap<String, serde_json::Value>,
    /// The live policy's scores.
    pub scores: Option<Scores>,
    /// The last decision ("would scale" in a dry run).
    pub last_decision: Option<LastDecision>,
    /// The shadow policy, when there is one.
    pub shadow: Option<ShadowView>,
    /// Automatic scaling paused.
    pub paused: bool,
    /// Passes run since the daemon started.
    pub passes: u64,
    /// When the last pass ran.
    pub last_pass: Option<String>,
    /// What went wrong at the last pass, and the policy file's load error.
    pub errors: Vec<String>,
    /// The policy's lower bound.
    pub min_replicas: u32,
    /// The policy's upper bound.
    pub max_replicas: u32,
    /// The policy's thresholds and targets (`*.threshold`, `target.*`),
    /// as the plugin reads them: what the signals are compared with.
    pub thresholds: Vec<(String, String)>,
    /// (time, running, ready) at each pass of the last [`HISTORY_MS`], for
    /// the status page's chart.
    #[serde(skip)]
    pub history: VecDeque<(TimestampMs, u32, u32)>,
}

/// How long the replica history of the status page is kept.
pub const HISTORY_MS: i64 = 12 * 3600 * 1000;

/// The most passes kept in it (12 h at a 15 s interval).
pub const HISTORY_POINTS: usize = 2880;

impl ServiceStatus {
    /// Record a pass's replica counts, dropping what is too old.
    pub fn record(&mut self, at: TimestampMs, running: u32, ready: u32) {
        self.history.push_back((at, running, ready));
        while self.history.len() > HISTORY_POINTS
            || self
                .history
                .front()
                .is_some_and(|(t, _, _)| *t < at - HISTORY_MS)
        {
            self.history.pop_front();
        }
    }
}

/// What the status API shows.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// By service.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Policy files and modules that failed, by path.
    pub load_errors: BTreeMap<String, LoadErrorView>,
    /// `.wasm` files in the watched folders.
    pub modules: BTreeMap<String, ModuleView>,
    /// Policy folders that are missing.
    pub missing_roots: Vec<String>,
}

impl Status {
    /// A policy version now serves its service.
    pub fn policy_loaded(&mut self, policy: &ReadyPolicy) {
        let s = self
            .services
            .entry(policy.file.service.clone())
            .or_default();
        s.policy_file = policy.file.path.display().to_string();
        s.plugin = Some(PluginRecord::from(&**policy.plugin.id()));
        s.policy_loaded = format_time(now_ms());
        s.min_replicas = policy.file.guard.min_replicas;
        s.max_replicas = policy.file.guard.max_replicas;
        s.thresholds = effective_params(&policy.plugin.description().params, &policy.params)
            .into_iter()
            .filter(|p| p.key.ends_with(".threshold") || p.key.starts_with("target."))
            .map(|p| (p.key, p.value.to_string()))
            .collect();
    }
}
