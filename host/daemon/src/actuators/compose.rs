//! The Compose actuator: scale one service of a Compose project through the
//! Docker API. A scale-up clones a running replica (start-first: the new
//! replicas must become ready within the monitor window, and more failures
//! than `max_failure_ratio` roll the whole scale back); a scale-down stops
//! the newest replicas gracefully and removes them.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkConnectRequest,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use tokio::time::Instant;

use super::{Outcome, PlannedReplica, ReplicaFailure, ScalePlan, ScaleReport, not_found};
use crate::config::{Rollout, Target};
use crate::engine::{
    ACTION_LABEL, CREATED_BY_LABEL, Engine, EngineError, NUMBER_LABEL, Readiness, Replica,
    api_error, inspect, readiness_of, replicas,
};

/// The container name for replica `number`, in the template's style:
/// Compose v1 `project_service_N`, v2 `project-service-N`, else
/// `service-N`.
pub fn replica_name(template: &str, project: &str, service: &str, number: u32) -> String {
    if template.starts_with(&format!("{project}_{service}_")) {
        format!("{project}_{service}_{number}")
    } else if template.starts_with(&format!("{project}-{service}-")) {
        format!("{project}-{service}-{number}")
    } else {
        format!("{service}-{number}")
    }
}

/// The create request that clones `template` as replica `number` for
/// `action`: image, command, environment, labels (with the new container
/// number, and the autoscaler's and the action's marks), healthcheck,
/// stop signal and timeout, the whole host config (mounts, ports, restart
/// policy, limits), and the first network with its aliases. The template's
/// hostname, MAC address and container-id alias are not copied.
pub fn clone_request(
    template: &ContainerInspectResponse,
    number: u32,
    action: &str,
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let config = template.config.clone().unwrap_or_default();
    // Config and create body share their fields; go through JSON so a field
    // added to both is cloned too.
    let mut value = serde_json::to_value(&config).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for k in ["Hostname", "MacAddress", "Domainname"] {
            map.remove(k);
        }
    }
    let mut body: ContainerCreateBody = serde_json::from_value(value).unwrap_or_default();
    let mut labels = body.labels.take().unwrap_or_default();
    labels.insert(NUMBER_LABEL.to_string(), number.to_string());
    labels.insert(
        CREATED_BY_LABEL.to_string(),
        "vedfolnir-autoscaler".to_string(),
    );
    labels.insert(ACTION_LABEL.to_string(), action.to_string());
    body.labels = Some(labels);
    body.host_config = template.host_config.clone();

    let short_id: String = template
        .id
        .clone()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let hostname = config.hostname.clone().unwrap_or_default();
    let mut networks: Vec<(String, EndpointSettings)> = template
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ep)| {
            let aliases: Vec<String> = ep
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|a| *a != short_id && *a != hostname)
                .collect();
            (
                name,
                EndpointSettings {
                    aliases: (!aliases.is_empty()).then_some(aliases),
                    links: ep.links,
                    driver_opts: ep.driver_opts,
                    ..Default::default()
                },
            )
        })
        .collect();
    // The network mode's own network first: the engine attaches it at create.
    let mode = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    networks.sort_by_key(|(name, _)| (*name != mode, name.clone()));
    if let Some((first, ep)) = networks.first() {
        body.networking_config = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(first.clone(), ep.clone())])),
        });
    }
    let rest = networks.into_iter().skip(1).collect();
    (body, rest)
}

/// Create, attach and start one clone. On failure the half-made container
/// is removed.
async fn start_clone(
    engine: &Engine,
    template: &ContainerInspectResponse,
    name: &str,
    number: u32,
    action: &str,
) -> Result<String, EngineError> {
    let (body, more_networks) = clone_request(template, number, action);
    let image = body.image.clone().unwrap_or_default();
    let created = engine
        .docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await
        .map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::api(format!(
                "creating {name}: image {image} is missing on this engine (it is not pulled): {message}"
            )),
            bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            } => EngineError::api(format!(
                "creating {name}: the name is taken by a container that is not a replica of this service: {message}"
            )),
            other => api_error(engine, &format!("creating {name}"), other),
        })?;
    let id = created.id;
    let result = async {
        for (network, ep) in more_networks {
            engine
                .docker
                .connect_network(
                    &network,
                    NetworkConnectRequest {
                        container: id.clone(),
                        endpoint_config: Some(ep),
                    },
                )
                .await
                .map_err(|e| {
                    api_error(
                        engine,
                        &format!("connecting {name} to network {network}"),
                        e,
                    )
                })?;
        }
        engine
            .docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|e| api_error(engine, &format!("starting {name}"), e))
    }
    .await;
    if let Err(e) = result {
        let _ = remove(engine, &id, Some(0)).await;
        return Err(e);
    }
    Ok(id)
}

/// Wait until a started replica is ready, or say why it is not.
async fn monitor(engine: &Engine, id: &str, window: Duration) -> Result<(), String> {
    let deadline = Instant::now() + window;
    loop {
        let c = inspect(engine, id)
            .await
            .map_err(|e| crate::errors::chain(&e))?;
        match readiness_of(&c) {
            Readiness::Ready => return Ok(()),
            Readiness::Unhealthy => {
                let health = c.state.and_then(|s| s.health).unwrap_or_default();
                let last = health
                    .log
                    .and_then(|l| l.last().cloned())
                    .unwrap_or_default();
                let output = last.output.unwrap_or_default();
                return Err(format!(
                    "unhealthy: healthcheck failed {} time(s) in a row, last exit code {}{}",
                    health.failing_streak.unwrap_or_default(),
                    last.exit_code.unwrap_or_default(),
                    if output.trim().is_empty() {
                        String::new()
                    } else {
                        format!(", output {:?}", output.trim())
                    }
                ));
            }
            Readiness::Down => {
                let state = c.state.unwrap_or_default();
                return Err(format!(
                    "{} (exit code {}){}",
                    state.status.map(|s| s.to_string()).unwrap_or_default(),
                    state.exit_code.unwrap_or_default(),
                    if state.oom_killed == Some(true) {
                        ", OOM-killed"
                    } else {
                        ""
                    }
                ));
            }
            Readiness::Starting => {}
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not healthy within the monitor window of {}",
                vedfolnir_core::format_duration(window.as_millis() as u64)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stop gracefully (SIGTERM, then SIGKILL after the timeout) and remove.
/// A container that is already gone counts as removed.
pub(crate) async fn remove(
    engine: &Engine,
    id: &str,
    stop_timeout_s: Option<i32>,
) -> Result<(), EngineError> {
    let mut stop = StopContainerOptionsBuilder::default();
    if let Some(t) = stop_timeout_s {
        stop = stop.t(t);
    }
    match engine.docker.stop_container(id, Some(stop.build())).await {
        Ok(()) => {}
        // 304: already stopped.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        }) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(()),
        Err(e) => return Err(api_error(engine, &format!("stopping {id}"), e)),
    }
    engine
        .docker
        .remove_container(
            id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .map_err(|e| api_error(engine, &format!("removing {id}"), e))
}

/// What scaling a Compose service of `project` to `to` running replicas
/// would do: stop the newest running replicas (highest container number,
/// then latest created), or clone a ready one (the lowest-numbered; else any
/// running one, else any container, as all may have died) under the next
/// numbers.
pub async fn plan(
    engine: &Engine,
    target: &Target,
    project: &str,
    to: u32,
) -> Result<ScalePlan, EngineError> {
    let all = replicas(engine, target).await?;
    if all.is_empty() {
        return Err(not_found(target));
    }
    let running: Vec<&Replica> = all.iter().filter(|r| r.is_running()).collect();
    let from = running.len() as u32;
    let mut plan = ScalePlan::counts(from, to);
    let planned = |r: &Replica| PlannedReplica {
        name: r.name.clone(),
        id: r.id.clone(),
        number: r.number,
    };
    if to < from {
        let mut victims = running.clone();
        victims.sort_by_key(|r| std::cmp::Reverse((r.number.unwrap_or(0), r.created)));
        plan.stop = victims
            .into_iter()
            .take((from - to) as usize)
            .map(planned)
            .collect();
    } else if to > from {
        let template = running
            .iter()
            .find(|r| r.readiness == Readiness::Ready)
            .or(running.first())
            .copied()
            .or(all.first())
            .expect("not empty");
        let first = all.iter().filter_map(|r| r.number).max().unwrap_or(0) + 1;
        plan.template = Some(template.id.clone());
        plan.create = (first..first + (to - from))
            .map(|number| PlannedReplica {
                name: replica_name(&template.name, project, &target.name, number),
                id: String::new(),
                number: Some(number),
            })
            .collect();
    }
    Ok(plan)
}

/// Carry out `plan` as `action`: stop and remove the planned replicas, or
/// create, start and judge the planned clones.
pub async fn scale(
    engine: &Engine,
    rollout: &Rollout,
    plan: &ScalePlan,
    action: &str,
) -> Result<ScaleReport, EngineError> {
    let started = Instant::now();
    let mut report = ScaleReport::new(plan.from, plan.to);
    let stop_timeout_s = rollout
        .stop_timeout_ms
        .map(|ms| ms.div_ceil(1000).min(i32::MAX as u64) as i32);
    if !plan.stop.is_empty() {
        scale_down(engine, &plan.stop, stop_timeout_s, &mut report).await;
    } else if let (Some(template), false) = (&plan.template, plan.create.is_empty()) {
        let template = inspect(engine, template).await?;
        let new = start_clones(engine, &template, &plan.create, action, &mut report).await;
        judge_clones(engine, rollout, new, stop_timeout_s, &mut report).await;
    }
    Ok(report.finish(started))
}

/// Finish an interrupted `action` by what it did: a scale-up's replicas
/// (found by their action label) count when running and, with `tidy`, are
/// removed when not (created and never started, or stopped); a scale-down's
/// planned victims count when gone or stopped (and, with `tidy`, a stopped
/// one is removed), and are left running when it never reached them.
pub async fn settle(
    engine: &Engine,
    target: &Target,
    plan: &ScalePlan,
    action: &str,
    tidy: bool,
) -> Result<ScaleReport, EngineError> {
    let all = match replicas(engine, target).await {
        Ok(all) => all,
        Err(EngineError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut report = ScaleReport::new(plan.from, plan.to);
    let mut notes = Vec::new();
    if plan.to > plan.from {
        for r in all.iter().filter(|r| r.action.as_deref() == Some(action)) {
            if r.is_running() {
                report.created.push(r.name.clone());
                report.reached += 1;
                continue;
            }
            report.failed.push(ReplicaFailure {
                name: r.name.clone(),
                reason: format!("left {} by the interrupted scale", r.state),
            });
            if !tidy {
                continue;
            }
            match remove(engine, &r.id, Some(0)).await {
                Ok(()) => report.removed.push(r.name.clone()),
                Err(e) => notes.push(crate::errors::chain(&e)),
            }
        }
    } else {
        for victim in &plan.stop {
            match all.iter().find(|r| r.id == victim.id) {
                Some(r) if r.is_running() => continue,
                Some(r) if tidy => {
                    if let Err(e) = remove(engine, &r.id, Some(0)).await {
                        notes.push(crate::errors::chain(&e));
                        continue;
                    }
                }
                // Stopped but still there, and this run only judges: it
                // no longer counts, but it was not removed.
                Some(r) => {
                    notes.push(format!("{} is {}, not removed", r.name, r.state));
                    report.reached -= 1;
                    continue;
                }
                None => {}
            }
            report.removed.push(victim.name.clone());
            report.reached -= 1;
        }
    }
    report.outcome = Outcome::judge(plan.from, plan.to, report.reached);
    notes.insert(
        0,
        format!(
            "interrupted: the process stopped mid-scale; judged by what it did ({} created, {} removed)",
            report.created.len(),
            report.removed.len()
        ),
    );
    report.error = Some(notes.join("; "));
    Ok(report)
}

/// Stop and remove the planned replicas, in parallel.
async fn scale_down(
    engine: &Engine,
    victims: &[PlannedReplica],
    stop_timeout_s: Option<i32>,
    report: &mut ScaleReport,
) {
    let results = futures_util::future::join_all(
        victims
            .iter()
            .map(|r| remove(engine, &r.id, stop_timeout_s)),
    )
    .await;
    for (r, res) in victims.iter().zip(results) {
        match res {
            Ok(()) => {
                report.removed.push(r.name.clone());
                report.reached -= 1;
            }
            Err(e) => {
                report.error.get_or_insert_with(|| crate::errors::chain(&e));
            }
        }
    }
}

/// Create and start the planned clones of `template`; stops at the first
/// that cannot start. Returns (id, name) of those started.
async fn start_clones(
    engine: &Engine,
    template: &ContainerInspectResponse,
    planned: &[PlannedReplica],
    action: &str,
    report: &mut ScaleReport,
) -> Vec<(String, String)> {
    let mut new = Vec::new();
    for p in planned {
        match start_clone(engine, template, &p.name, p.number.unwrap_or(0), action).await {
            Ok(id) => new.push((id, p.name.clone())),
            Err(e) => {
                report.error = Some(crate::errors::chain(&e));
                break;
            }
        }
    }
    new
}

/// Wait for the new replicas to become ready; remove those that do not,
/// and roll the whole scale back past the failure ratio.
async fn judge_clones(
    engine: &Engine,
    rollout: &Rollout,
    new: Vec<(String, String)>,
    stop_timeout_s: Option<i32>,
    report: &mut ScaleReport,
) {
    let window = Duration::from_millis(rollout.monitor_ms);
    let verdicts =
        futures_util::future::join_all(new.iter().map(|(id, _)| monitor(engine, id, window))).await;
    let mut healthy = Vec::new();
    for ((id, name), verdict) in new.iter().zip(verdicts) {
        match verdict {
            Ok(()) => healthy.push((id.clone(), name.clone())),
            Err(reason) => {
                report.failed.push(ReplicaFailure {
                    name: name.clone(),
                    reason,
                });
                if remove(engine, id, Some(0)).await.is_ok() {
                    report.removed.push(name.clone());
                }
            }
        }
    }
    let attempted = new.len();
    if attempted > 0 && report.failed.len() as f64 / attempted as f64 > rollout.max_failure_ratio {
        // Past the failure ratio: roll the whole scale back.
        for (id, name) in &healthy {
            if remove(engine, id, stop_timeout_s).await.is_ok() {
                report.removed.push(name.clone());
            }
        }
        report.error.get_or_insert_with(|| {
            format!(
                "{} of {attempted} new replica(s) failed, above max_failure_ratio {}: rolled back",
                report.failed.len(),
                rollout.max_failure_ratio
            )
        });
        return;
    }
    report.reached = report.from + healthy.len() as u32;
    report.created = healthy.into_iter().map(|(_, name)| name).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, HostConfig, NetworkSettings};

    #[test]
    fn replica_names_follow_the_templates_style() {
        assert_eq!(replica_name("p_web_1", "p", "web", 3), "p_web_3");
        assert_eq!(replica_name("p-web-1", "p", "web", 3), "p-web-3");
        assert_eq!(replica_name("something", "p", "web", 3), "web-3");
    }

    #[test]
    fn a_clone_keeps_the_template_but_not_its_identity() {
        let template = ContainerInspectResponse {
            id: Some("abcdef0123456789".into()),
            config: Some(ContainerConfig {
                hostname: Some("abcdef012345".into()),
                image: Some("app:1".into()),
                env: Some(vec!["A=1".into()]),
                labels: Some(HashMap::from([
                    (NUMBER_LABEL.to_string(), "1".to_string()),
                    ("keep".to_string(), "me".to_string()),
                ])),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                nano_cpus: Some(2_000_000_000),
                memory: Some(2 << 30),
                pids_limit: Some(1000),
                network_mode: Some("p_back".into()),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    (
                        "p_front".to_string(),
                        EndpointSettings {
                            aliases: Some(vec!["web".into()]),
                            ip_address: Some("10.0.0.5".into()),
                            ..Default::default()
                        },
                    ),
                    (
                        "p_back".to_string(),
                        EndpointSettings {
                            aliases: Some(vec!["web".into(), "abcdef012345".into()]),
                            ..Default::default()
                        },
                    ),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (body, rest) = clone_request(&template, 7, "web-1-2");
        assert_eq!(body.hostname, None);
        assert_eq!(body.image.as_deref(), Some("app:1"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[NUMBER_LABEL], "7");
        assert_eq!(labels[ACTION_LABEL], "web-1-2");
        assert_eq!(labels[CREATED_BY_LABEL], "vedfolnir-autoscaler");
        assert_eq!(labels["keep"], "me");
        let host = body.host_config.unwrap();
        assert_eq!(
            (host.nano_cpus, host.memory, host.pids_limit),
            (Some(2_000_000_000), Some(2 << 30), Some(1000))
        );
        // The network-mode network is attached at create, without the
        // template's id alias; the other is connected after, without its IP.
        let first = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(first["p_back"].aliases, Some(vec!["web".to_string()]));
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, "p_front");
        assert_eq!(rest[0].1.ip_address, None);
    }
}
