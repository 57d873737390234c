//! The auditor's page of a bundle with break-glass releases: they come
//! first, under their own heading, each with its outcome; the approvals'
//! timelines follow as before.

use modelgate::records::envelope::{Signer, public_keys};
use modelgate::records::verify::{self, Line};

use super::fixtures::{self, three_approvals};
use super::*;

fn checked(approvals: &[modelgate::api::approval::ModelApproval]) -> (Report, Vec<String>) {
    let signer = Signer::generate().unwrap_or_else(|e| panic!("{e}"));
    let keys = public_keys(&signer.public_pem().unwrap_or_default()).unwrap_or_default();
    let report = verify::verify(&fixtures::bundle(&signer, approvals), &keys);
    (report, vec![signer.id().to_string()])
}

/// Where `needle` is on `page`; fails when it is not.
fn at(page: &str, needle: &str) -> usize {
    page.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not on the page"))
}

#[test]
fn break_glass_releases_come_first_with_who_why_what_when_and_how_it_ended() {
    let (report, keys) = checked(&three_approvals());
    assert!(report.ok(), "{:?}", report.failures);
    let page = render("risk.jsonl", &report, &keys).unwrap_or_else(|e| panic!("{e}"));
    let heading = at(&page, "<h2 id=\"break-glass\">Break-glass releases</h2>");
    let ratified = at(
        &page,
        "risk/fd-ratified: break-glass fd-ratified-bg-1 <span class=\"badge ratified\">ratified</span>",
    );
    let lapsed = at(
        &page,
        "risk/fd-lapsed: break-glass fd-lapsed-bg-1 <span class=\"badge lapsed\">lapsed</span>",
    );
    let timelines = at(&page, "<section class=\"approval\"");
    assert!(
        heading < ratified && ratified < lapsed && lapsed < timelines,
        "{page}"
    );
    let first = &page[ratified..lapsed];
    for says in [
        "<dt>Requested by</dt><dd>ines@example.com</dd>",
        "<dt>Approved by</dt><dd>olga@example.com</dd>",
        "<dt>Reason</dt><dd>INC-4711: 2.4.0 flags every card payment in Ireland</dd>",
        "<dt>Without</dt><dd>LegalReview</dd>",
        "<dt>Window</dt><dd>2026-11-25 09:10:00 UTC until 2026-11-25 13:10:00 UTC</dd>",
        "ratified at 2026-11-25 10:00:00 UTC",
        "✓ signed record, line 2",
        "✓ signed record, line 3",
    ] {
        assert!(first.contains(says), "{says}\n{first}");
    }
    assert!(
        page[lapsed..timelines].contains("lapsed at 2026-11-25 13:20:00 UTC"),
        "{page}"
    );
    // Every approval keeps its timeline, in the order it had.
    let (a, r, l) = (
        at(&page, "risk/aa-approved <span"),
        at(&page, "risk/fd-lapsed <span"),
        at(&page, "risk/fd-ratified <span"),
    );
    assert!(timelines < a && a < r && r < l, "{page}");
    assert!(page.contains("<li class=\"breakglass\">"), "{page}");
}

#[test]
fn a_bundle_without_break_glass_has_no_such_heading() {
    let approvals = three_approvals();
    let (report, keys) = checked(&approvals[..1]);
    assert!(report.ok(), "{:?}", report.failures);
    let page = render("risk.jsonl", &report, &keys).unwrap_or_else(|e| panic!("{e}"));
    assert!(!page.contains("Break-glass releases"), "{page}");
    assert!(page.contains("risk/aa-approved"), "{page}");
}

#[test]
fn a_release_still_in_force_or_known_only_by_its_end_is_listed_too() {
    let approvals = three_approvals();
    let statements = fixtures::statements(&approvals[2]);
    let line = |n: usize, s: &modelgate::records::statement::Statement| Line {
        line: n,
        statement: Some(s.clone()),
        verified: n != 9,
    };
    // Only the start: still in force as far as the bundle tells.
    let started = breakglass::releases(&[line(1, &statements[0])]);
    assert_eq!(started.len(), 1);
    assert_eq!((started[0].kind, started[0].records.len()), ("open", 1));
    // Only the end (an export scoped after it began): its signed release
    // still says who, why and what; a record that does not verify says so.
    let ended = breakglass::releases(&[line(9, &statements[1])]);
    assert_eq!(ended.len(), 1);
    let r = &ended[0];
    assert_eq!(
        (r.kind, r.name.as_str(), r.requested_by.as_str()),
        ("lapsed", "fd-lapsed-bg-1", "ines@example.com")
    );
    assert!(!r.records[0].verified);
}
