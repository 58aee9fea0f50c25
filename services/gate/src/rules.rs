//! Protection rules: parsed and validated from requests, and the default every job starts with.

use std::time::Duration;

use syncguard_domain::FieldError;
use syncguard_proto::v1::{self, ActionKind, ObjectType, protection_window};

/// The default limit of the products: more than 500 deletes plus disables in one cycle trips.
pub const DEFAULT_MAX_COUNT: i64 = 500;
/// Counts above this are not protection at all; they are refused as mistakes.
const MAX_SENSIBLE_COUNT: u64 = 100_000_000;
const MAX_RULES: usize = 20;
const MAX_WINDOW: Duration = Duration::from_secs(90 * 24 * 3600);

/// One validated protection rule, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Shown when the rule trips.
    pub name: String,
    /// Action kinds counted: `delete`, `disable`, `update`, `create`, ...
    pub counted_actions: Vec<String>,
    /// `user`, `group`, or `None` for both.
    pub object_type: Option<String>,
    /// Trips above this count.
    pub max_count: Option<i64>,
    /// Trips above this percentage of the type's population in scope.
    pub max_percent: Option<f64>,
    /// Below this population the percentage is not applied.
    pub min_population: i64,
    /// `None`: per cycle; otherwise a rolling window in seconds.
    pub window_secs: Option<i32>,
}

/// The rule a new job gets: deletes and disables of any type, above 500 per cycle trips.
pub fn default_rules() -> Vec<Rule> {
    vec![Rule {
        name: "default".into(),
        counted_actions: vec!["delete".into(), "disable".into()],
        object_type: None,
        max_count: Some(DEFAULT_MAX_COUNT),
        max_percent: None,
        min_population: 0,
        window_secs: None,
    }]
}

fn action_name(kind: ActionKind) -> Option<&'static str> {
    match kind {
        ActionKind::Create => Some("create"),
        ActionKind::Update => Some("update"),
        ActionKind::Disable => Some("disable"),
        ActionKind::Enable => Some("enable"),
        ActionKind::Delete => Some("delete"),
        ActionKind::Restore => Some("restore"),
        ActionKind::Unspecified | ActionKind::Purge => None,
    }
}

fn action_kind(name: &str) -> ActionKind {
    match name {
        "create" => ActionKind::Create,
        "update" => ActionKind::Update,
        "disable" => ActionKind::Disable,
        "enable" => ActionKind::Enable,
        "delete" => ActionKind::Delete,
        "restore" => ActionKind::Restore,
        _ => ActionKind::Unspecified,
    }
}

/// Validates the rules of a request; errors name the field (`rules[1].max_percent`).
/// An empty list means the default rule.
pub fn parse_rules(rules: &[v1::ProtectionRule]) -> Result<Vec<Rule>, FieldError> {
    if rules.is_empty() {
        return Ok(default_rules());
    }
    if rules.len() > MAX_RULES {
        return Err(FieldError::new(
            "rules",
            format!("{} rules given, at most {MAX_RULES} allowed", rules.len()),
        ));
    }
    rules
        .iter()
        .enumerate()
        .map(|(index, rule)| parse_rule(&format!("rules[{index}]"), index, rule))
        .collect()
}

fn parse_rule(field: &str, index: usize, rule: &v1::ProtectionRule) -> Result<Rule, FieldError> {
    let name = match rule.name.trim() {
        "" => format!("rule-{}", index + 1),
        name if name.len() > 100 => {
            return Err(FieldError::new(
                format!("{field}.name"),
                "at most 100 characters",
            ));
        }
        name => name.to_owned(),
    };

    let mut counted_actions = Vec::new();
    for (position, raw) in rule.counted_actions.iter().enumerate() {
        let name = ActionKind::try_from(*raw)
            .ok()
            .and_then(action_name)
            .ok_or_else(|| {
                FieldError::new(
                    format!("{field}.counted_actions[{position}]"),
                    format!("{raw} is not an action kind a rule can count (create, update, disable, enable, delete, restore)"),
                )
            })?;
        if !counted_actions.iter().any(|known| known == name) {
            counted_actions.push(name.to_owned());
        }
    }
    if counted_actions.is_empty() {
        counted_actions = vec!["delete".into(), "disable".into()];
    }

    let object_type = match ObjectType::try_from(rule.object_type) {
        Ok(ObjectType::Unspecified) => None,
        Ok(ObjectType::User) => Some("user".to_owned()),
        Ok(ObjectType::Group) => Some("group".to_owned()),
        Err(_) => {
            return Err(FieldError::new(
                format!("{field}.object_type"),
                format!("{} is not an object type", rule.object_type),
            ));
        }
    };

    let max_count = match rule.max_count {
        Some(count) if count > MAX_SENSIBLE_COUNT => {
            return Err(FieldError::new(
                format!("{field}.max_count"),
                format!("{count} is not a usable limit (at most {MAX_SENSIBLE_COUNT})"),
            ));
        }
        Some(count) => Some(i64::try_from(count).unwrap_or(i64::MAX)),
        None => None,
    };
    let max_percent = match rule.max_percent {
        Some(percent) if !(percent > 0.0 && percent <= 100.0) => {
            return Err(FieldError::new(
                format!("{field}.max_percent"),
                format!("{percent} is not a percentage in (0, 100]"),
            ));
        }
        other => other,
    };
    if max_count.is_none() && max_percent.is_none() {
        return Err(FieldError::new(
            format!("{field}.max_count"),
            "set max_count, max_percent, or both",
        ));
    }
    if rule.min_population > MAX_SENSIBLE_COUNT {
        return Err(FieldError::new(
            format!("{field}.min_population"),
            format!("{} is not a usable population", rule.min_population),
        ));
    }

    let window_secs = match rule.window.as_ref().and_then(|window| window.kind.as_ref()) {
        None | Some(protection_window::Kind::PerCycle(_)) => None,
        Some(protection_window::Kind::Rolling(duration)) => {
            let seconds = duration.seconds;
            if duration.nanos != 0 || seconds < 60 || seconds as u64 > MAX_WINDOW.as_secs() {
                return Err(FieldError::new(
                    format!("{field}.window.rolling"),
                    "a rolling window is whole seconds between 1 minute and 90 days",
                ));
            }
            Some(seconds as i32)
        }
    };

    Ok(Rule {
        name,
        counted_actions,
        object_type,
        max_count,
        max_percent,
        min_population: rule.min_population as i64,
        window_secs,
    })
}

impl Rule {
    /// The rule as the API shows it.
    pub fn to_proto(&self, rule_id: String) -> v1::ProtectionRule {
        let window = match self.window_secs {
            None => protection_window::Kind::PerCycle(v1::PerCycleWindow {}),
            Some(seconds) => protection_window::Kind::Rolling(prost_types::Duration {
                seconds: i64::from(seconds),
                nanos: 0,
            }),
        };
        v1::ProtectionRule {
            rule_id,
            name: self.name.clone(),
            counted_actions: self
                .counted_actions
                .iter()
                .map(|name| action_kind(name) as i32)
                .collect(),
            object_type: match self.object_type.as_deref() {
                Some("user") => ObjectType::User as i32,
                Some("group") => ObjectType::Group as i32,
                _ => ObjectType::Unspecified as i32,
            },
            max_count: self.max_count.map(|count| count.max(0) as u64),
            max_percent: self.max_percent,
            min_population: self.min_population.max(0) as u64,
            window: Some(v1::ProtectionWindow { kind: Some(window) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> v1::ProtectionRule {
        v1::ProtectionRule {
            max_count: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn empty_rules_mean_the_default_of_500_deletes_and_disables() {
        let rules = parse_rules(&[]).unwrap();
        assert_eq!(rules, default_rules());
        assert_eq!(rules[0].max_count, Some(500));
        assert_eq!(rules[0].counted_actions, ["delete", "disable"]);
    }

    #[test]
    fn invalid_numbers_name_their_field() {
        let over = v1::ProtectionRule {
            max_percent: Some(120.0),
            ..rule()
        };
        let error = parse_rules(&[rule(), over]).unwrap_err();
        assert_eq!(error.field, "rules[1].max_percent");

        let absurd = v1::ProtectionRule {
            max_count: Some(u64::MAX),
            ..rule()
        };
        assert_eq!(
            parse_rules(&[absurd]).unwrap_err().field,
            "rules[0].max_count"
        );

        let unknown_kind = v1::ProtectionRule {
            counted_actions: vec![ActionKind::Delete as i32, 42],
            ..rule()
        };
        assert_eq!(
            parse_rules(&[unknown_kind]).unwrap_err().field,
            "rules[0].counted_actions[1]"
        );

        let no_limit = v1::ProtectionRule::default();
        assert_eq!(
            parse_rules(&[no_limit]).unwrap_err().field,
            "rules[0].max_count"
        );
    }

    #[test]
    fn rolling_windows_round_trip() {
        let rolling = v1::ProtectionRule {
            window: Some(v1::ProtectionWindow {
                kind: Some(protection_window::Kind::Rolling(prost_types::Duration {
                    seconds: 86_400,
                    nanos: 0,
                })),
            }),
            ..rule()
        };
        let parsed = parse_rules(std::slice::from_ref(&rolling)).unwrap();
        assert_eq!(parsed[0].window_secs, Some(86_400));
        assert_eq!(parsed[0].to_proto(String::new()).window, rolling.window);
    }
}
