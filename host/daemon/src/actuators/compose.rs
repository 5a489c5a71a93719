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

use super::{ReplicaFailure, ScaleReport, not_found};
use crate::config::{Rollout, Target};
use crate::engine::{
    CREATED_BY_LABEL, Engine, EngineError, NUMBER_LABEL, Readiness, Replica, api_error, inspect,
    readiness_of, replicas,
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

/// The create request that clones `template` as replica `number`: image,
/// command, environment, labels (with the new container number), healthcheck,
/// stop signal and timeout, the whole host config (mounts, ports, restart
/// policy, limits), and the first network with its aliases. The template's
/// hostname, MAC address and container-id alias are not copied.
pub fn clone_request(
    template: &ContainerInspectResponse,
    number: u32,
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
) -> Result<String, EngineError> {
    let (body, more_networks) = clone_request(template, number);
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
            other => api_error(&format!("creating {name}"), other),
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
                .map_err(|e| api_error(&format!("connecting {name} to network {network}"), e))?;
        }
        engine
            .docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|e| api_error(&format!("starting {name}"), e))
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
        let c = inspect(engine, id).await.map_err(|e| e.to_string())?;
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
async fn remove(engine: &Engine, id: &str, stop_timeout_s: Option<i32>) -> Result<(), EngineError> {
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
        Err(e) => return Err(api_error(&format!("stopping {id}"), e)),
    }
    engine
        .docker
        .remove_container(
            id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .map_err(|e| api_error(&format!("removing {id}"), e))
}

/// Scale a Compose service of `project` to `to` running replicas.
pub async fn scale(
    engine: &Engine,
    target: &Target,
    project: &str,
    rollout: &Rollout,
    to: u32,
) -> Result<ScaleReport, EngineError> {
    let started = Instant::now();
    let all = replicas(engine, target).await?;
    if all.is_empty() {
        return Err(not_found(target));
    }
    let running: Vec<&Replica> = all.iter().filter(|r| r.is_running()).collect();
    let mut report = ScaleReport::new(running.len() as u32, to);
    let stop_timeout_s = rollout
        .stop_timeout_ms
        .map(|ms| ms.div_ceil(1000).min(i32::MAX as u64) as i32);
    let from = report.from;
    if to < from {
        scale_down(engine, &running, from - to, stop_timeout_s, &mut report).await;
    } else if to > from {
        // The template: a ready replica (the lowest-numbered), else any
        // running one, else any container of the service (all may have died).
        let template = running
            .iter()
            .find(|r| r.readiness == Readiness::Ready)
            .or(running.first())
            .copied()
            .or(all.first())
            .expect("not empty");
        let template = inspect(engine, &template.id).await?;
        let first = all.iter().filter_map(|r| r.number).max().unwrap_or(0) + 1;
        let new = start_clones(
            engine,
            &template,
            project,
            target,
            first,
            to - from,
            &mut report,
        )
        .await;
        judge_clones(engine, rollout, new, stop_timeout_s, &mut report).await;
    }
    Ok(report.finish(started))
}

/// Stop and remove the `n` newest running replicas (highest container
/// number, then latest created), in parallel.
async fn scale_down(
    engine: &Engine,
    running: &[&Replica],
    n: u32,
    stop_timeout_s: Option<i32>,
    report: &mut ScaleReport,
) {
    let mut victims = running.to_vec();
    victims.sort_by_key(|r| std::cmp::Reverse((r.number.unwrap_or(0), r.created)));
    victims.truncate(n as usize);
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
                report.error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Create and start `n` clones of `template`, numbered from `first`; stops
/// at the first that cannot start. Returns (id, name) of those started.
async fn start_clones(
    engine: &Engine,
    template: &ContainerInspectResponse,
    project: &str,
    target: &Target,
    first: u32,
    n: u32,
    report: &mut ScaleReport,
) -> Vec<(String, String)> {
    let template_name = template
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();
    let mut new = Vec::new();
    for next in first..first + n {
        let name = replica_name(&template_name, project, &target.name, next);
        match start_clone(engine, template, &name, next).await {
            Ok(id) => new.push((id, name)),
            Err(e) => {
                report.error = Some(e.to_string());
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
        let (body, rest) = clone_request(&template, 7);
        assert_eq!(body.hostname, None);
        assert_eq!(body.image.as_deref(), Some("app:1"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[NUMBER_LABEL], "7");
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
