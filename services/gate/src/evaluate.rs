//! The circuit breaker itself: counts of a cycle (plus what was applied in a rule's rolling
//! window) held against each rule's count and percentage limits.

use std::collections::HashMap;

pub use syncguard_domain::Breach;

use crate::protection::describe_rule;
use crate::rules::Rule;

/// Counts keyed by (action, object type), e.g. `("delete", "user")`.
pub type Counts = HashMap<(String, String), u64>;

fn matches(rule: &Rule, action: &str, object_type: &str) -> bool {
    rule.counted_actions.iter().any(|counted| counted == action)
        && rule
            .object_type
            .as_deref()
            .is_none_or(|wanted| wanted == object_type)
}

fn count(rule: &Rule, counts: &Counts) -> u64 {
    counts
        .iter()
        .filter(|((action, object_type), _)| matches(rule, action, object_type))
        .map(|(_, n)| *n)
        .sum()
}

/// Whether the population of objects in scope must be counted (a scan of the job's
/// objects): only for a rule with a percentage limit that counts something in this cycle or
/// its window. With nothing counted no limit can be exceeded, so a delta that creates or
/// updates never reads the whole job (a one-object delta on a 1,000,000-object job with a
/// percentage rule counted a million objects for every decision).
pub fn needs_population(rules: &[Rule], cycle_counts: &Counts, window_counts: &[Counts]) -> bool {
    rules.iter().enumerate().any(|(index, rule)| {
        let in_window = window_counts
            .get(index)
            .map(|counts| count(rule, counts))
            .unwrap_or(0);
        rule.max_percent.is_some() && count(rule, cycle_counts) + in_window > 0
    })
}

/// The limit a rule sets for a population: the smaller of its count and (when the
/// population reaches the rule's minimum) its percentage.
fn limit(rule: &Rule, population: u64) -> Option<u64> {
    let by_count = rule.max_count.map(|count| count.max(0) as u64);
    let by_percent = rule
        .max_percent
        .filter(|_| population >= rule.min_population.max(0) as u64)
        .map(|percent| (population as f64 * percent / 100.0).floor() as u64);
    match (by_count, by_percent) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Every rule the cycle exceeds. `window_counts[i]` is what rule `i` counts from applied
/// actions in its rolling window (empty for per-cycle rules); `populations` are live target
/// objects by type.
pub fn evaluate(
    rules: &[Rule],
    cycle_counts: &Counts,
    window_counts: &[Counts],
    populations: &HashMap<String, u64>,
) -> Vec<Breach> {
    let mut breaches = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let population = match rule.object_type.as_deref() {
            Some(object_type) => populations.get(object_type).copied().unwrap_or(0),
            None => populations.values().sum(),
        };
        let Some(limit) = limit(rule, population) else {
            continue;
        };
        let in_window = window_counts
            .get(index)
            .map(|counts| count(rule, counts))
            .unwrap_or(0);
        let counted = count(rule, cycle_counts) + in_window;
        if counted > limit {
            breaches.push(Breach {
                rule_index: index,
                rule_name: rule.name.clone(),
                counted,
                limit,
                population,
                explanation: format!(
                    "rule {:?} counted {counted} ({}), limit {limit}{}",
                    rule.name,
                    describe_rule(rule),
                    if in_window > 0 {
                        format!(", {in_window} of them applied earlier in the window")
                    } else {
                        String::new()
                    }
                ),
            });
        }
    }
    breaches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::default_rules;

    fn counts(pairs: &[(&str, &str, u64)]) -> Counts {
        pairs
            .iter()
            .map(|(action, object_type, n)| (((*action).to_owned(), (*object_type).to_owned()), *n))
            .collect()
    }

    fn threshold(n: i64) -> Rule {
        Rule {
            max_count: Some(n),
            ..default_rules().remove(0)
        }
    }

    #[test]
    fn the_default_trips_above_500_deletes_and_disables_of_any_type() {
        let rules = default_rules();
        let at_limit = counts(&[
            ("delete", "user", 300),
            ("disable", "user", 150),
            ("delete", "group", 50),
            ("update", "user", 9000),
        ]);
        assert!(
            evaluate(&rules, &at_limit, &[], &HashMap::new()).is_empty(),
            "500 does not trip"
        );
        let over = counts(&[
            ("delete", "user", 300),
            ("disable", "user", 150),
            ("delete", "group", 51),
        ]);
        let breaches = evaluate(&rules, &over, &[], &HashMap::new());
        assert_eq!((breaches[0].counted, breaches[0].limit), (501, 500));
    }

    #[test]
    fn percentages_apply_only_from_the_minimum_population() {
        let rule = Rule {
            max_count: None,
            max_percent: Some(10.0),
            min_population: 100,
            ..default_rules().remove(0)
        };
        let deletes = counts(&[("delete", "user", 20)]);
        let small = HashMap::from([("user".to_owned(), 50)]);
        assert!(evaluate(std::slice::from_ref(&rule), &deletes, &[], &small).is_empty());
        let large = HashMap::from([("user".to_owned(), 150)]);
        let breaches = evaluate(&[rule], &deletes, &[], &large);
        assert_eq!((breaches[0].counted, breaches[0].limit), (20, 15));
    }

    #[test]
    fn the_population_is_counted_only_when_a_percentage_rule_counts_something() {
        let percent = Rule {
            max_count: None,
            max_percent: Some(10.0),
            ..default_rules().remove(0)
        };
        let updates = counts(&[("update", "user", 5), ("create", "group", 1)]);
        let deletes = counts(&[("delete", "user", 1)]);
        let rules = std::slice::from_ref(&percent);
        assert!(!needs_population(rules, &updates, &[]));
        assert!(needs_population(rules, &deletes, &[]));
        assert!(needs_population(
            rules,
            &updates,
            std::slice::from_ref(&deletes)
        ));
        assert!(!needs_population(&[threshold(5)], &deletes, &[]));
        // Nothing counted can exceed no limit, whatever the population.
        assert!(evaluate(rules, &updates, &[], &HashMap::new()).is_empty());
    }

    #[test]
    fn rolling_windows_add_what_was_applied_before() {
        let rule = Rule {
            window_secs: Some(86_400),
            ..threshold(5)
        };
        let cycle = counts(&[("delete", "user", 2)]);
        let earlier = counts(&[("delete", "user", 4)]);
        let breaches = evaluate(
            std::slice::from_ref(&rule),
            &cycle,
            &[earlier],
            &HashMap::new(),
        );
        assert_eq!(breaches[0].counted, 6);
        assert!(
            breaches[0]
                .explanation
                .contains("4 of them applied earlier")
        );
        let fewer = counts(&[("delete", "user", 2)]);
        assert!(evaluate(&[rule], &cycle, &[fewer], &HashMap::new()).is_empty());
    }

    #[test]
    fn typed_rules_count_only_their_type() {
        let rule = Rule {
            object_type: Some("group".into()),
            ..threshold(1)
        };
        let users_only = counts(&[("delete", "user", 50)]);
        assert!(
            evaluate(
                std::slice::from_ref(&rule),
                &users_only,
                &[],
                &HashMap::new()
            )
            .is_empty()
        );
        let groups = counts(&[("delete", "group", 2)]);
        assert_eq!(evaluate(&[rule], &groups, &[], &HashMap::new()).len(), 1);
    }
}
