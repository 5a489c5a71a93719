//! `simulate`: the shipped policies replayed through the service model, in
//! the real sandbox, and every bad input named by file, line or key.

use crate::util::{run, temp_file};

/// Run `simulate` with `args` and `--json --quiet`; parse the report.
fn simulate_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["simulate", "--json", "--quiet"];
    all.extend_from_slice(args);
    let out = run(&all).expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The policy label of each row of a report, in order.
fn labels(report: &serde_json::Value) -> Vec<&str> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["policy"].as_str().unwrap())
        .collect()
}

fn row<'a>(report: &'a serde_json::Value, policy: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == policy)
        .unwrap_or_else(|| panic!("no row for {policy}: {report}"))
}

#[test]
fn every_builtin_policy_replays_a_flash_crowd_side_by_side_with_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.svg");
    let actions = dir.path().join("actions.jsonl");
    let violations = dir.path().join("violations.jsonl");
    let report = simulate_json(&[
        "--shape",
        "flash-crowd",
        "--duration",
        "3h",
        "--base",
        "100",
        "--peak",
        "1000",
        "--max-replicas",
        "20",
        "--chart",
        chart.to_str().unwrap(),
        "--actions",
        actions.to_str().unwrap(),
        "--violations",
        violations.to_str().unwrap(),
    ]);
    let results = report["results"].as_array().unwrap();
    let names = labels(&report);
    assert_eq!(
        names,
        [
            "threshold-score",
            "target-tracking",
            "predictive",
            "cost-aware"
        ]
    );
    // 3 hours every 15 s is 720 passes, less those spent waiting for new
    // replicas to start (as the daemon waits); no plugin ever failed.
    for r in results {
        let n = r["evaluations"].as_u64().unwrap();
        assert!((650..720).contains(&n), "{r}");
        assert_eq!(r["failed_evaluations"], 0, "{r}");
        assert!(r["actions"].as_u64().unwrap() >= 2, "{r}");
    }
    // The crowd (1000 req/s) needs at least 10 replicas of 100 req/s: the
    // tracking policies get there; the documented policy adds one at a time
    // after 5 minutes of high CPU, so the crowd costs it SLO minutes.
    assert!(
        row(&report, "target-tracking")["peak_replicas"]
            .as_u64()
            .unwrap()
            >= 10
    );
    assert!(
        row(&report, "threshold-score")["slo_violation_minutes"]
            .as_f64()
            .unwrap()
            > 5.0
    );
    // Cost-aware spends fewer replica-hours than target tracking at 60%.
    assert!(
        row(&report, "cost-aware")["replica_hours"]
            .as_f64()
            .unwrap()
            < row(&report, "target-tracking")["replica_hours"]
                .as_f64()
                .unwrap()
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for name in names {
        assert!(
            svg.contains(&format!(">{name}</text>")),
            "legend lacks {name}"
        );
    }
    // The action log: one JSON object per action, with the policy's reasons.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&actions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total: u64 = results.iter().map(|r| r["actions"].as_u64().unwrap()).sum();
    assert_eq!(lines.len() as u64, total);
    assert!(lines.iter().any(|l| {
        l["policy"] == "target-tracking"
            && l["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().starts_with("cpu-tracking:"))
    }));
    // The violations: each policy's stretches add up to its row's minutes.
    let stretches: Vec<serde_json::Value> = std::fs::read_to_string(&violations)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in results {
        let minutes: f64 = stretches
            .iter()
            .filter(|v| v["policy"] == r["policy"])
            .map(|v| v["minutes"].as_f64().unwrap())
            .sum();
        let reported = r["slo_violation_minutes"].as_f64().unwrap();
        assert!((minutes - reported).abs() < 1e-6, "{minutes} != {r}");
    }
}

#[test]
fn each_row_names_its_bounds_and_a_bound_that_decided_is_said() {
    // A builtin runs with its default bounds; a policy file with its own.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.toml");
    std::fs::write(
        &file,
        "service = \"simulated\"\nplugin = \"builtin:target-tracking\"\nmin_replicas = 1\nmax_replicas = 40\n",
    )
    .unwrap();
    let args = [
        "simulate",
        "--quiet",
        "--shape",
        "diurnal",
        "--duration",
        "1d",
        "--peak",
        "2000",
        "--policy",
        "builtin:target-tracking",
        "--policy",
        file.to_str().unwrap(),
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = run(&json_args).expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["results"].as_array().unwrap();
    let narrow = &rows[0];
    let wide = &rows[1];
    assert_eq!(wide["min_replicas"], 1);
    assert_eq!(wide["max_replicas"], 40);
    let max = narrow["max_replicas"].as_u64().unwrap();
    assert!(max < 40, "{narrow}");
    // The narrow one sat at its bound while violating.
    let at_max = narrow["violation_minutes_at_max"].as_f64().unwrap();
    assert!(
        at_max > 0.0 && at_max <= narrow["slo_violation_minutes"].as_f64().unwrap(),
        "{narrow}"
    );
    let text = run(&args).expect_code(0).stdout;
    assert!(text.contains("1-40"), "{text}");
    assert!(text.contains("different replica bounds"), "{text}");
    assert!(
        text.contains(&format!("target-tracking: at its max_replicas ({max}) for")),
        "{text}"
    );
}

#[test]
fn the_table_names_the_columns_and_the_same_run_gives_the_same_numbers() {
    let args = [
        "simulate",
        "--quiet",
        "--shape",
        "diurnal",
        "--duration",
        "1d",
        "--policy",
        "builtin:target-tracking",
        "--policy",
        "builtin:cost-aware",
        "--max-replicas",
        "12",
    ];
    let a = run(&args).expect_code(0);
    for column in [
        "SLO-violation",
        "replica-hours",
        "actions",
        "reversals<=10m",
        "actions/day",
        "reversals/day",
        "container starts",
        "between actions",
    ] {
        assert!(a.stdout.contains(column), "{}", a.stdout);
    }
    let b = run(&args).expect_code(0);
    // Everything but the wall-clock lines (the replay's time, and the
    // evaluations that took longer than the daemon's deadline on this
    // machine) is a pure function of the input.
    let body = |s: &str| {
        s.lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.contains("replayed in")
                    && !l.contains("longer than the daemon's deadline")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&a.stdout), body(&b.stdout));
}

/// A replay stops a policy by an instruction budget, not the daemon's
/// wall-clock deadline: the same replay gives the same report while every
/// core is kept busy by other work. Only the wall-clock figures differ.
#[test]
fn a_replay_gives_the_same_report_on_a_busy_machine() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let args = [
        "--shape",
        "web",
        "--duration",
        "12h",
        "--base",
        "200",
        "--peak",
        "900",
        "--max-replicas",
        "20",
    ];
    let strip = |mut report: serde_json::Value| {
        report.as_object_mut().unwrap().remove("elapsed_ms");
        for row in report["results"].as_array_mut().unwrap() {
            row.as_object_mut()
                .unwrap()
                .remove("over_deadline_evaluations");
        }
        report
    };
    let calm = simulate_json(&args);
    for r in calm["results"].as_array().unwrap() {
        for key in [
            "actions_per_day",
            "reversals_per_day",
            "container_starts",
            "over_deadline_evaluations",
        ] {
            assert!(r.get(key).is_some(), "{key}: {r}");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burners: Vec<_> = (0..2 * cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let busy = simulate_json(&args);
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    assert_eq!(strip(calm), strip(busy));
}

#[test]
fn a_csv_trace_is_replayed_from_its_load_column() {
    // Two hours of hourly load, interpolated to the evaluation interval.
    let (_dir, path) = temp_file("t.csv", "hour,load,other\n0,300,1\n1,600,1\n2,300,1\n");
    let report = simulate_json(&[
        "--trace",
        path.to_str().unwrap(),
        "--policy",
        "builtin:target-tracking",
        "--interval",
        "1m",
        "--max-replicas",
        "20",
    ]);
    assert_eq!(report["duration_ms"], 3 * 3_600_000);
    let r = row(&report, "target-tracking");
    // 600 req/s is 10 replicas' worth at the 0.6 CPU target (the `other`
    // column would be the minimum); a load that rises this steadily is
    // left within the 25% scale-up band, at 9 (a CPU at 67%).
    assert_eq!(r["peak_replicas"], 9, "{r}");
    assert_eq!(r["evaluations"], 180, "{r}");
}

/// Each bad trace: the file's content, the message expected (with its line).
const BAD_TRACES: &[(&str, &str, &str)] = &[
    (
        "missing row",
        "hour,load\n0,1\n1,2\n3,2\n",
        ":4: time 3 follows 1: 1 row(s) missing",
    ),
    (
        "empty value",
        "hour,load\n0,1\n1,\n",
        ":3: load is empty (a missing value is not 0)",
    ),
    (
        "negative value",
        "hour,load\n0,1\n1,-5\n",
        ":3: load -5 is negative",
    ),
    (
        "non-numeric value",
        "hour,load\n0,1\n1,lots\n",
        ":3: load \"lots\" is not a number",
    ),
    ("empty file", "", ": the file is empty"),
    ("header only", "hour,load\n", ": 0 data row(s)"),
    (
        "unknown time column",
        "day,load\n0,1\n1,1\n",
        ":1: the first column must be the time",
    ),
];

#[test]
fn bad_traces_are_refused_naming_the_file_and_line() {
    for (what, text, expected) in BAD_TRACES {
        let (_dir, path) = temp_file("trace.csv", text);
        let out = run(&["simulate", "--trace", path.to_str().unwrap()]).expect_code(2);
        let want = format!("{}{expected}", path.display());
        assert!(
            out.stderr.contains(&want),
            "{what}: want {want:?} in\n{}",
            out.stderr
        );
    }
}

#[test]
fn an_unknown_column_is_refused_listing_the_columns() {
    let (_dir, path) = temp_file("trace.csv", "second,requests,tokens\n0,1,9\n1,2,9\n");
    let out = run(&[
        "simulate",
        "--trace",
        path.to_str().unwrap(),
        "--column",
        "load",
    ])
    .expect_code(2);
    assert!(
        out.stderr
            .contains(":1: unknown column \"load\"; the columns are requests, tokens"),
        "{}",
        out.stderr
    );
    let out = run(&["simulate", "--trace", path.to_str().unwrap()]).expect_code(2);
    assert!(
        out.stderr.contains("choose one with --column"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_policy_whose_parameters_fail_validate_config_is_refused_naming_the_key() {
    let (_dir, path) = temp_file(
        "predictive.toml",
        "service = \"web\"\nplugin = \"builtin:predictive\"\n[params]\ntarget = 0\nseason = \"25m\"\n",
    );
    let out = run(&[
        "simulate",
        "--shape",
        "step",
        "--duration",
        "1h",
        "--policy",
        path.to_str().unwrap(),
    ])
    .expect_code(2);
    assert!(
        out.stderr
            .contains("params.target: must be above 0, found 0"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("params.season: must be a whole number of buckets"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&path.display().to_string()),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_shape_or_policy_is_refused() {
    let out = run(&["simulate", "--shape", "zigzag"]).expect_code(2);
    assert!(
        out.stderr
            .contains("unknown shape \"zigzag\" (one of step, ramp, flash-crowd, diurnal, web)"),
        "{}",
        out.stderr
    );
    let out = run(&["simulate", "--policy", "builtin:nope"]).expect_code(2);
    assert!(
        out.stderr.contains("no builtin policy \"nope\""),
        "{}",
        out.stderr
    );
    for (args, says) in [
        (
            ["--shape", "step", "--noise", "0.2"],
            "--noise: the step shape has no noise (diurnal and web have)",
        ),
        (
            ["--shape", "web", "--noise", "1.5"],
            "--noise 1.5 must be from 0 to 1",
        ),
        (
            ["--shape", "diurnal", "--burst-period", "5m"],
            "--burst-period: the diurnal shape has no bursts (web has)",
        ),
        (
            ["--shape", "web", "--burst-period", "2d"],
            "--burst-period 2d: must be from 1s to 1d",
        ),
    ] {
        let mut all = vec!["simulate", "--duration", "1h"];
        all.extend_from_slice(&args);
        let out = run(&all).expect_code(2);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
}

#[test]
fn a_replay_too_fine_too_long_or_too_loud_is_refused_naming_what_to_change() {
    for (args, says) in [
        (
            &["--step", "0s"][..],
            "--step 0s: a replay's step and interval must be at least 1s",
        ),
        (
            &["--interval", "500ms"],
            "--interval 500ms: a replay's step and interval must be at least 1s",
        ),
        (
            &["--duration", "100000d"],
            "--duration 100000d: a shape lasts at most 366d",
        ),
        (
            &["--base", "1e308", "--peak", "1e308"],
            "more than 1e6 replicas at --capacity 100 serve: bring it down with --scale",
        ),
    ] {
        let mut all = vec!["simulate", "--shape", "web"];
        if args[0] != "--duration" {
            all.extend(["--duration", "1h"]);
        }
        all.extend_from_slice(args);
        let out = run(&all).expect_code(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    // A trace's length counts at its step: 30 years of hourly rows at 1s.
    let rows: String = (0..30 * 366 * 24).map(|h| format!("{h},1\n")).collect();
    let (_dir, path) = temp_file("decades.csv", &format!("hour,load\n{rows}"));
    let out = run(&[
        "simulate",
        "--trace",
        path.to_str().unwrap(),
        "--step",
        "1s",
        "--interval",
        "1s",
    ])
    .expect_code(2);
    assert!(
        out.stderr
            .contains("model steps, more than 31622400 (366 days at 1s): use a longer --step"),
        "{}",
        out.stderr
    );
}

/// An output the replay could not write is refused before the replay runs
/// (a year's replay takes minutes), and nothing is left in its folder.
#[test]
fn an_output_that_cannot_be_written_is_refused_before_the_replay() {
    let (dir, _) = temp_file("keep.txt", "");
    let folder = dir.path().to_str().unwrap();
    let missing = format!("{folder}/missing/chart.svg");
    for (args, says) in [
        (
            ["--chart", missing.as_str()],
            format!("--chart {missing}: its folder {folder}/missing cannot be written"),
        ),
        (
            ["--actions", folder],
            format!("--actions {folder}: a folder, not a file"),
        ),
    ] {
        let mut all = vec![
            "simulate",
            "--shape",
            "web",
            "--duration",
            "366d",
            "--step",
            "1m",
        ];
        all.extend_from_slice(&args);
        let out = run(&all).expect_code(2);
        assert!(out.stderr.contains(&says), "{args:?}: {}", out.stderr);
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["keep.txt"], "{left:?}");
}

/// The web shape at docs/policies.md's daily swing of 3 to 13 replicas.
const NOISY_WEB: [&str; 8] = [
    "--shape",
    "web",
    "--base",
    "180",
    "--peak",
    "780",
    "--max-replicas",
    "20",
];

/// `--noise` makes the web shape noisier, and a noisier load moves
/// target-tracking more often; the report says which noise it replayed.
#[test]
fn noisier_web_traffic_is_asked_for_with_noise() {
    let run_at = |noise: &str| {
        let mut args = NOISY_WEB.to_vec();
        args.extend(["--duration", "1d", "--noise", noise]);
        args.extend(["--policy", "builtin:target-tracking"]);
        simulate_json(&args)
    };
    let (calm, noisy) = (run_at("0"), run_at("0.3"));
    assert!(
        noisy["load"].as_str().unwrap().ends_with(", noise 0.3"),
        "{noisy}"
    );
    let actions = |r: &serde_json::Value| row(r, "target-tracking")["actions"].as_u64().unwrap();
    let peak = |r: &serde_json::Value| row(r, "target-tracking")["peak_replicas"].as_u64().unwrap();
    assert!(peak(&noisy) > peak(&calm), "{calm}\n{noisy}");
    assert!(actions(&noisy) > actions(&calm), "{calm}\n{noisy}");
    // Bursts that last longer: named, and a different load.
    let mut args = NOISY_WEB.to_vec();
    args.extend(["--duration", "1d", "--noise", "0.3", "--burst-period", "5m"]);
    args.extend(["--policy", "builtin:target-tracking"]);
    let long = simulate_json(&args);
    assert!(
        long["load"]
            .as_str()
            .unwrap()
            .ends_with(", noise 0.3, bursts from 5m"),
        "{long}"
    );
    assert_ne!(
        row(&long, "target-tracking"),
        row(&noisy, "target-tracking")
    );
}

/// The report's yardstick: the fewest replica-hours with no SLO violation.
/// Every policy that met the SLO spent at least that, and a higher floor
/// of replicas raises it.
#[test]
fn the_least_possible_replica_hours_is_below_every_policy_that_met_the_slo() {
    let at = |min: &str| {
        let mut args = NOISY_WEB.to_vec();
        args.extend(["--duration", "1d", "--seed", "2", "--min-replicas", min]);
        simulate_json(&args)
    };
    let report = at("1");
    let least = report["least_replica_hours"].as_f64().unwrap();
    let mut met = 0;
    for r in report["results"].as_array().unwrap() {
        if r["slo_violation_minutes"].as_f64().unwrap() == 0.0 {
            met += 1;
            assert!(
                r["replica_hours"].as_f64().unwrap() >= least,
                "{least}: {r}"
            );
        }
    }
    assert!(met >= 2 && least > 0.0, "{report}");
    let floored = at("6")["least_replica_hours"].as_f64().unwrap();
    assert!(floored > least, "{least} {floored}");
}

#[test]
fn the_shipped_policies_pass_their_golden_scenarios_as_components() {
    for name in ["target-tracking", "predictive", "cost-aware"] {
        let out = run(&[
            "plugin",
            "test",
            &format!("builtin:{name}"),
            &format!("plugins/{name}/scenarios.toml"),
        ])
        .expect_code(0);
        assert!(
            out.stdout.contains(" passed, 0 failed"),
            "{name}: {}",
            out.stdout
        );
    }
}

#[test]
fn the_example_policy_files_validate() {
    let mut args = vec!["validate".to_string(), "policies/vedfolnir.toml".into()];
    for name in ["target-tracking", "predictive", "cost-aware"] {
        args.push(format!("policies/examples/{name}.toml"));
    }
    args.push("docs/simulate/cost-aware-optimistic.toml".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs).expect_code(0);
    assert_eq!(out.stdout.matches(": ok (").count(), 5, "{}", out.stdout);
}

/// What an operator copies must not undo the policies' calm: on the noisy
/// `web` shape each example keeps to the churn goals of docs/policies.md,
/// at most 20 actions and 1 reversal a day. (A 5-minute scale-down window,
/// a 5-minute scale-down cooldown and steps of 4 up, 2 down, as the
/// examples once had, gave target-tracking 23.5 actions and 2.5 reversals
/// a day here.)
#[test]
fn the_example_policy_files_do_not_follow_noise() {
    let mut args: Vec<String> = NOISY_WEB.map(String::from).to_vec();
    args.extend(["--duration", "2d", "--seed", "1"].map(String::from));
    for name in ["target-tracking", "predictive", "cost-aware"] {
        args.push("--policy".into());
        args.push(format!("policies/examples/{name}.toml"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = simulate_json(&refs);
    for name in ["target-tracking", "predictive", "cost-aware"] {
        let r = row(&report, name);
        let actions = r["actions_per_day"].as_f64().unwrap();
        let reversals = r["reversals_per_day"].as_f64().unwrap();
        assert!(actions > 0.0 && actions <= 20.0, "{name}: {r}");
        assert!(reversals <= 1.0, "{name}: {r}");
    }
}

#[test]
fn a_policy_given_twice_gets_two_rows_told_apart() {
    let report = simulate_json(&[
        "--shape",
        "step",
        "--duration",
        "1h",
        "--policy",
        "builtin:target-tracking",
        "--policy",
        "builtin:target-tracking",
    ]);
    let names = labels(&report);
    assert_eq!(names, ["target-tracking#1", "target-tracking#2"]);
}

/// `--frontier` adds target-tracking at five CPU targets beside the
/// policies asked for, and every row carries the level-foresight
/// yardstick: what knowing the level ahead would have cost at its
/// violation minutes.
#[test]
fn the_frontier_and_the_foresight_yardstick_come_with_every_report() {
    let mut args = NOISY_WEB.to_vec();
    args.extend([
        "--duration",
        "12h",
        "--seed",
        "2",
        "--policy",
        "builtin:predictive",
        "--frontier",
    ]);
    let report = simulate_json(&args);
    let results = report["results"].as_array().unwrap();
    assert_eq!(
        labels(&report),
        [
            "predictive",
            "tracking cpu 0.5",
            "tracking cpu 0.6",
            "tracking cpu 0.65",
            "tracking cpu 0.7",
            "tracking cpu 0.75",
            "tracking cpu 0.8"
        ]
    );
    // Along the frontier, a higher target spends fewer replica-hours.
    let hours: Vec<f64> = results[1..]
        .iter()
        .map(|r| r["replica_hours"].as_f64().unwrap())
        .collect();
    assert!(hours.windows(2).all(|p| p[1] < p[0]), "{hours:?}");
    let minutes = |r: &serde_json::Value| r["slo_violation_minutes"].as_f64().unwrap();
    assert!(minutes(&results[1]) <= minutes(&results[6]), "{report}");
    // Each row's yardstick, at most its violation minutes, and (knowing
    // the level ahead) below the replica-hours of the tracking row that
    // spent the most.
    for r in results {
        let f = r["foresight_replica_hours"]
            .as_f64()
            .unwrap_or_else(|| panic!("{r}"));
        assert!(f > 0.0 && f < hours[0], "{r}");
    }
    let text = run(&[
        "simulate",
        "--quiet",
        "--shape",
        "web",
        "--duration",
        "6h",
        "--policy",
        "builtin:target-tracking",
    ])
    .expect_code(0)
    .stdout;
    assert!(text.contains("level foresight"), "{text}");
}

/// `simulate --history` on a state directory's minute record: a torn or
/// bad line is skipped and counted, a gap holds the minute before, and a
/// bad span, a service with no load or no policy are refused by name.
#[test]
fn a_record_with_bad_lines_and_a_gap_replays_what_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let minutes = dir.path().join("state/minutes");
    std::fs::create_dir_all(&minutes).unwrap();
    let day = 1_796_601_600_000_i64; // 2026-12-07T00:00:00Z
    let line = |k: i64, load: f64| {
        format!(
            "{{\"t\":{},\"samples\":4,\"values\":{{\"requests-per-second@recent\":{load},\"cpu\":{},\"instance-count\":2}}}}\n",
            day + k * 60_000,
            load / 200.0
        )
    };
    let mut text: String = (0..10).map(|k| line(k, 80.0)).collect();
    text.push_str("{\"t\":oops\n");
    text.push_str(&(12..20).map(|k| line(k, 120.0)).collect::<String>());
    text.push_str("{\"t\":1");
    std::fs::write(minutes.join("web.2026-12-07.jsonl"), text).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("web.toml"),
        "service = \"web\"\nplugin = \"builtin:target-tracking\"\nmin_replicas = 1\nmax_replicas = 6\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = [
            "simulate",
            "--history",
            "web",
            "--state-dir",
            state.to_str().unwrap(),
            "--from",
            "2026-12-07T00:00:00Z",
            "--to",
            "2026-12-08T00:00:00Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    let run_with = |extra: &[&str]| {
        let all = args(extra);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&all)
    };
    let out = run_with(&["--policies", policies.to_str().unwrap(), "--json"]).expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let h = &report["history"];
    assert_eq!(h["minutes"], 20, "{h}");
    assert_eq!(h["filled_minutes"], 2, "{h}");
    assert_eq!(h["skipped_lines"], 2, "{h}");
    let load: Vec<f64> = serde_json::from_value(h["load"].clone()).unwrap();
    assert_eq!(
        (load[9], load[10], load[11], load[12]),
        (80.0, 80.0, 80.0, 120.0)
    );
    // 80 req/s at 40% CPU on 2 replicas: 100 a replica.
    assert_eq!(h["calibration"]["capacity"], 100.0, "{h}");
    assert_eq!(report["results"][0]["policy"], "web");

    let bad = run(&[
        "simulate",
        "--history",
        "web",
        "--state-dir",
        state.to_str().unwrap(),
        "--to",
        "yesterday",
    ])
    .expect_code(2);
    assert!(bad.stderr.contains("--to \"yesterday\""), "{}", bad.stderr);
    let none = run_with(&[]).expect_code(2);
    assert!(
        none.stderr.contains("no policy to replay"),
        "{}",
        none.stderr
    );
    let other =
        run_with(&["--load-signal", "orders", "--policy", "builtin:cost-aware"]).expect_code(2);
    assert!(
        other.stderr.contains("no minute has orders"),
        "{}",
        other.stderr
    );
}
