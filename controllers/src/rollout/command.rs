//! Rollout commands given with `kubectl annotate`: `drover.dev/promote=step|full` and
//! `drover.dev/abort`. A strategy acts on the pending one; what it did becomes an Event
//! once the status holds it, and the annotation is removed.

use std::collections::BTreeMap;

use drover_crds::names::annotation;
use kube::runtime::events::EventType;

/// What a user asked for with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Past the current step (or, after an abort, resume from it).
    Promote,
    /// Straight to every pod.
    PromoteFull,
    /// Every pod back on the stable revision.
    Abort,
}

impl Command {
    /// The annotation that carries it.
    pub fn annotation(self) -> &'static str {
        match self {
            Command::Abort => annotation::ABORT,
            Command::Promote | Command::PromoteFull => annotation::PROMOTE,
        }
    }
}

/// The command the annotations give, if any: an abort wins over a promotion. `Err` says
/// what is wrong with an unreadable value.
pub fn parse(annotations: &BTreeMap<String, String>) -> Option<Result<Command, String>> {
    if annotations.contains_key(annotation::ABORT) {
        return Some(Ok(Command::Abort));
    }
    let value = annotations.get(annotation::PROMOTE)?;
    Some(match value.trim() {
        "" | "step" => Ok(Command::Promote),
        "full" => Ok(Command::PromoteFull),
        other => Err(format!(
            "annotation {}={other:?}: set it to `step` (past the current step) or `full` (every pod)",
            annotation::PROMOTE
        )),
    })
}

/// What a strategy did with the pending command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Acted on: the Event to publish.
    Acted(EventType, &'static str, String),
    /// Not yet (a blue-green promotion waits for the preview): the annotation stays.
    Deferred,
    /// Nothing to act on.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_annotations() {
        assert_eq!(parse(&annotations(&[])), None);
        assert_eq!(
            parse(&annotations(&[(annotation::PROMOTE, "")])),
            Some(Ok(Command::Promote))
        );
        assert_eq!(
            parse(&annotations(&[(annotation::PROMOTE, " step ")])),
            Some(Ok(Command::Promote))
        );
        assert_eq!(
            parse(&annotations(&[(annotation::PROMOTE, "full")])),
            Some(Ok(Command::PromoteFull))
        );
        // An abort wins, whatever else is set.
        assert_eq!(
            parse(&annotations(&[
                (annotation::PROMOTE, "full"),
                (annotation::ABORT, "")
            ])),
            Some(Ok(Command::Abort))
        );
        let Some(Err(message)) = parse(&annotations(&[(annotation::PROMOTE, "all")])) else {
            panic!("an unknown value is an error");
        };
        assert!(message.contains("\"all\"") && message.contains("`full`"));
        assert!(message.contains(annotation::PROMOTE));
    }

    #[test]
    fn each_command_names_its_annotation() {
        assert_eq!(Command::Abort.annotation(), annotation::ABORT);
        assert_eq!(Command::PromoteFull.annotation(), annotation::PROMOTE);
    }
}
