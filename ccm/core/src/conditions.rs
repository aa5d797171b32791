//! Status conditions as we write them: one merge of a wanted condition with its previous self,
//! and one bound for every message written to the API.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The longest condition message or Event note written (bytes). Messages quote user input
/// only in short excerpts already; this bounds the rest (lists of Services, pools).
pub const MESSAGE_MAX: usize = 1024;

/// `text` cut to at most `max` bytes (on a character boundary): the one bound for every
/// message written to the API (Event notes, condition messages).
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// One condition as decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// How the previous message is treated when a condition stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Always the wanted message.
    Wanted,
    /// A False condition whose reason did not change keeps its message, so that a detail that
    /// changes (who holds an address) does not rewrite the object.
    KeptWhileFalseForTheSameReason,
}

/// `want` merged with the `previous` condition of its type: `lastTransitionTime` is kept while
/// the status does not change, and is `now` when it does; the message is bounded.
pub fn merged(
    previous: Option<&Condition>,
    want: &WantedCondition,
    message: Message,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if want.status { "True" } else { "False" };
    let same_status = previous.filter(|old| old.status == status);
    let last_transition_time =
        same_status.map_or(Time(now), |old| old.last_transition_time.clone());
    let kept = match message {
        Message::Wanted => None,
        Message::KeptWhileFalseForTheSameReason => {
            same_status.filter(|old| !want.status && old.reason == want.reason)
        }
    };
    Condition {
        type_: want.type_.to_owned(),
        status: status.to_owned(),
        reason: want.reason.clone(),
        message: kept.map_or_else(
            || bounded(want.message.clone(), MESSAGE_MAX),
            |old| old.message.clone(),
        ),
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn want(status: bool, reason: &str, message: &str) -> WantedCondition {
        WantedCondition {
            type_: "Ready",
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let first = merged(
            None,
            &want(true, "Ok", "fine"),
            Message::Wanted,
            Some(1),
            at(10),
        );
        assert_eq!(first.last_transition_time, Time(at(10)));
        let same = merged(
            Some(&first),
            &want(true, "Ok", "still"),
            Message::Wanted,
            Some(2),
            at(20),
        );
        assert_eq!(same.last_transition_time, Time(at(10)));
        assert_eq!(
            (same.message.as_str(), same.observed_generation),
            ("still", Some(2))
        );
        let flipped = merged(
            Some(&same),
            &want(false, "Bad", "no"),
            Message::Wanted,
            Some(2),
            at(30),
        );
        assert_eq!(flipped.last_transition_time, Time(at(30)));
    }

    #[test]
    fn a_false_condition_keeps_its_message_for_the_same_reason_only_when_asked() {
        let first = merged(
            None,
            &want(false, "Taken", "held by a"),
            Message::Wanted,
            None,
            at(1),
        );
        let kept = Message::KeptWhileFalseForTheSameReason;
        let same = merged(
            Some(&first),
            &want(false, "Taken", "held by b"),
            kept,
            None,
            at(2),
        );
        assert_eq!(same.message, "held by a");
        let other = merged(
            Some(&first),
            &want(false, "Invalid", "bad"),
            kept,
            None,
            at(2),
        );
        assert_eq!(other.message, "bad");
        let plain = merged(
            Some(&first),
            &want(false, "Taken", "held by b"),
            Message::Wanted,
            None,
            at(2),
        );
        assert_eq!(plain.message, "held by b");
    }

    #[test]
    fn messages_are_bounded_on_a_character_boundary() {
        let long = "é".repeat(MESSAGE_MAX);
        let condition = merged(None, &want(true, "Ok", &long), Message::Wanted, None, at(1));
        assert!(condition.message.len() <= MESSAGE_MAX);
        assert_eq!(bounded("abc".into(), 2), "ab");
        assert_eq!(bounded("é".into(), 1), "");
    }
}
