//! Where `drover.dev/undo` goes back to: `previous` (the newest revision below the current
//! one) or a revision number. Pure: the stored revisions are an input.

use drover_crds::names::annotation;

/// Where to go back to.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Previous,
    Number(i64),
}

pub fn parse(value: &str) -> Option<Target> {
    match value.trim() {
        "" | "previous" => Some(Target::Previous),
        n => n.parse().ok().filter(|n| *n > 0).map(Target::Number),
    }
}

/// The revision to return to, as an index into `stored` (name, number), given the number
/// of the current update revision (`None`: the newest stored one is current).
pub fn choose(target: &Target, stored: &[(String, i64)], current: Option<i64>) -> Option<usize> {
    let current = current.or_else(|| stored.iter().map(|(_, n)| *n).max())?;
    match target {
        Target::Previous => stored
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n < current)
            .max_by_key(|(_, (_, n))| *n)
            .map(|(i, _)| i),
        Target::Number(wanted) => stored.iter().position(|(_, n)| n == wanted),
    }
}

/// Resolves the annotation's `value` against the stored revisions and the current update
/// revision's name: the index of the revision to return to, or the message that says why
/// there is none and what to set instead.
pub fn resolve(
    value: &str,
    stored: &[(String, i64)],
    update_revision: Option<&str>,
) -> Result<usize, String> {
    let current = update_revision
        .and_then(|u| stored.iter().find(|(n, _)| n == u))
        .map(|(_, n)| *n);
    parse(value)
        .and_then(|t| choose(&t, stored, current))
        .ok_or_else(|| {
            let mut numbers: Vec<i64> = stored.iter().map(|(_, n)| *n).collect();
            numbers.sort_unstable();
            let numbers: Vec<String> = numbers.iter().map(i64::to_string).collect();
            format!(
                "annotation {}={value:?} names no earlier revision; set it to `previous` or one of the revision numbers {}",
                annotation::UNDO,
                numbers.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Vec<(String, i64)> {
        vec![("a".into(), 1), ("c".into(), 4), ("b".into(), 2)]
    }

    #[test]
    fn reads_the_annotation() {
        assert_eq!(parse("previous"), Some(Target::Previous));
        assert_eq!(parse(""), Some(Target::Previous));
        assert_eq!(parse(" 3 "), Some(Target::Number(3)));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("last"), None);
    }

    #[test]
    fn previous_is_the_newest_below_the_current_revision() {
        assert_eq!(choose(&Target::Previous, &stored(), Some(4)), Some(2));
        assert_eq!(choose(&Target::Previous, &stored(), Some(2)), Some(0));
        assert_eq!(choose(&Target::Previous, &stored(), Some(1)), None);
        // Without a status, the newest revision is the current one.
        assert_eq!(choose(&Target::Previous, &stored(), None), Some(2));
        assert_eq!(choose(&Target::Number(1), &stored(), Some(4)), Some(0));
        assert_eq!(choose(&Target::Number(3), &stored(), Some(4)), None);
        assert_eq!(choose(&Target::Previous, &[], None), None);
    }

    #[test]
    fn resolves_against_the_recorded_update_revision() {
        // The status names revision b (number 2): previous is a.
        assert_eq!(resolve("previous", &stored(), Some("b")), Ok(0));
        // An update revision not stored (yet): the newest stored one is current.
        assert_eq!(resolve("previous", &stored(), Some("zz")), Ok(2));
        assert_eq!(resolve("4", &stored(), Some("b")), Ok(1));
        let why = resolve("9", &stored(), Some("c")).unwrap_err();
        assert!(why.contains("\"9\"") && why.ends_with("1, 2, 4"), "{why}");
        assert!(resolve("previous", &stored(), Some("a")).is_err());
    }
}
