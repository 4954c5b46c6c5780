//! The chain of custody on an import or export job's page: whether it verifies (the same
//! `offsite_seeding::custody::verify` that `offsite diskprep --verify-custody`
//! runs), each problem by name, and who handled each drive when.

use maud::{html, Markup};

use offsite_seeding::custody::CustodyReport;

use super::layout::when;

pub fn section(report: &CustodyReport) -> Markup {
    html! {
        section #custody {
            h2 { "Chain of custody" }
            @if report.events == 0 {
                @if report.job_kind == offsite_seeding::custody::EXPORT {
                    p { "No custody event recorded yet: the datacenter's station records each drive as written \
                         and shipped." }
                } @else {
                    p { "No custody event recorded yet: diskprep records each drive as prepared and shipped, the \
                         datacenter's station as received, ingested and wiped." }
                }
            } @else if report.verified() {
                p #custody-result { strong { "Verified" } ": " (report.events) " signed events, each chained to the one \
                   before. Head " span.mono { (report.head.get(..16).unwrap_or(&report.head)) } "." }
            } @else {
                p #custody-result { strong { "Does not verify" } ": " (report.problems.len()) " problem(s)." }
                ul { @for problem in &report.problems { li { (problem.to_string()) } } }
            }
            @for drive in &report.drives {
                h3 { "Drive " span.mono { (drive.drive_id) } }
                div.scroll { table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Event" }
                        th scope="col" { "Handled by" } th scope="col" { "Details" } th scope="col" { "Verified" } } }
                    tbody { @for h in &drive.events { tr {
                        td { (h.seq) } td { (when(h.at)) } td.state { (h.kind.name()) }
                        td { @if h.handler.is_empty() { span.mono { (h.actor) } } @else { (h.handler) } }
                        td { (h.details) } td { @if h.verified { "yes" } @else { strong { "no" } } }
                    } } }
                } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use offsite_seeding::custody::{CustodyProblem, CustodyReport};

    #[test]
    fn a_chain_that_does_not_verify_names_each_problem() {
        let report = CustodyReport {
            job_kind: "import".into(),
            job_id: "imp_1".into(),
            events: 4,
            head: "ab".repeat(32),
            problems: vec![CustodyProblem::Missing { from: 3, to: 3 }, CustodyProblem::Altered { seq: 4 }],
            drives: Vec::new(),
        };
        let html = super::section(&report).into_string();
        assert!(html.contains("Does not verify"), "{html}");
        assert!(html.contains("event 3 is missing: the log goes from event 2 to 4"), "{html}");
        assert!(html.contains("event 4 was altered"), "{html}");
    }
}
