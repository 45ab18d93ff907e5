//! Skipping a test for a missing prerequisite: allowed on a developer machine, a failure in CI.

/// Whether the tests run in CI: the `CI` environment variable is `true` or `1` (any case), as
/// CI services and `.ci/run` set it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// For a test that cannot run because the machine lacks something it needs (`reason`, e.g.
/// `"curl is not installed"`): outside CI prints `skipped: <reason>` and returns, so the test
/// returns early and passes; under `CI=true` panics with the reason, because CI provides every
/// prerequisite and a test that silently skips there checks nothing.
///
/// ```no_run
/// # fn curl_installed() -> bool { true }
/// if !curl_installed() {
///     orca_cluster_test_support::skip_outside_ci("curl is not installed");
///     return;
/// }
/// ```
#[track_caller]
pub fn skip_outside_ci(reason: &str) {
    if in_ci() {
        panic!("CI=true, so this test may not skip: {reason}");
    }
    println!("skipped: {reason}");
}
