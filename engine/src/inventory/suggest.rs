//! "Did you mean ...?": close matches for a misspelt key, host or group name.

/// At most this many suggestions: more is noise.
const MAX_SUGGESTIONS: usize = 3;
/// Suggestions scoring this much less than the best one are left out.
const MARGIN: f64 = 0.15;

/// The candidates close to `word`, best first (ties in candidate order), at most three.
pub(super) fn close_matches<'a, I>(word: &str, candidates: I) -> Vec<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut scored: Vec<(f64, &str)> = Vec::new();
    for candidate in candidates {
        if candidate == word || scored.iter().any(|(_, seen)| *seen == candidate) {
            continue;
        }
        let score = similarity(word, candidate);
        if score > 0.0 {
            scored.push((score, candidate));
        }
    }
    // A stable sort keeps the candidates' own order among equal scores.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    // A clearly better match makes the others noise (`webserver`: not `dbservers`).
    let best = scored.first().map_or(0.0, |(score, _)| *score);
    scored
        .into_iter()
        .take_while(|(score, _)| best - score <= MARGIN)
        .take(MAX_SUGGESTIONS)
        .map(|(_, c)| c)
        .collect()
}

/// How alike two names are, 0 when not alike enough to suggest.
///
/// Edit distance catches typos and swapped letters (`adress`, `wbe1`); Jaro-Winkler
/// catches a shortened or lengthened name that shares a long prefix (`webserver`).
fn similarity(word: &str, candidate: &str) -> f64 {
    let edits = strsim::normalized_damerau_levenshtein(word, candidate);
    let prefix = strsim::jaro_winkler(word, candidate);
    if edits >= 0.6 || prefix >= 0.88 {
        edits.max(prefix)
    } else {
        0.0
    }
}

/// `; did you mean `x`?` (or `` `a` or `b` ``), or nothing when no candidate is close.
pub(super) fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    let matches = close_matches(word, candidates);
    if matches.is_empty() {
        return String::new();
    }
    format!("; did you mean {}?", or_list(&matches))
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn or_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_suggests_the_intended_word() {
        let keys = ["address", "transport", "ssh", "sudo", "vars"];
        assert_eq!(close_matches("adress", keys), vec!["address"]);
        assert_eq!(close_matches("sshh", keys), vec!["ssh"]);
        assert_eq!(close_matches("var", keys), vec!["vars"]);
    }

    #[test]
    fn swapped_letters_are_close() {
        assert_eq!(close_matches("wbe1", ["db1", "web1"]), vec!["web1"]);
    }

    #[test]
    fn best_match_comes_first_and_at_most_three() {
        let names = ["web10", "web1", "web2", "web3", "web4"];
        let found = close_matches("web1x", names);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0], "web1");
    }

    #[test]
    fn a_much_better_match_hides_the_others() {
        assert_eq!(
            close_matches("webserver", ["dbservers", "webservers"]),
            vec!["webservers"]
        );
        assert_eq!(close_matches("dbb", ["db1", "db"]), vec!["db", "db1"]);
    }

    #[test]
    fn unrelated_words_are_not_suggested() {
        assert!(close_matches("zzz", ["address", "web1"]).is_empty());
        assert_eq!(did_you_mean("zzz", ["address"]), "");
    }

    #[test]
    fn the_word_itself_and_duplicates_are_skipped() {
        assert_eq!(
            close_matches("web1", ["web1", "web2", "web2"]),
            vec!["web2"]
        );
    }

    #[test]
    fn did_you_mean_lists_with_or() {
        assert_eq!(
            did_you_mean("adress", ["address"]),
            "; did you mean `address`?"
        );
        assert_eq!(
            did_you_mean("web", ["web1", "web2"]),
            "; did you mean `web1` or `web2`?"
        );
        assert_eq!(or_list(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
