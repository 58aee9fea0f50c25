//! Ids for the rows of one bulk statement: the statement binds a [`BatchIds`] and numbers
//! its rows with `syncguard_batch_id(prefix, start, row_number() OVER ())` (migration
//! 20261128000002). One UUID is drawn per statement instead of one per row.

use uuid::Uuid;

/// The last six bytes of a UUID, where a batch counts its rows.
const LOW_48: u128 = (1 << 48) - 1;

/// The per-statement part of the ids a bulk statement writes: the first ten bytes of a
/// fresh UUID version 7 as hex, and its last six bytes (below 2^46, so adding a row number
/// never carries into the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIds {
    /// Hex of the millisecond, the version and the random bits every id of the batch shares.
    pub prefix: String,
    /// Where the batch's row numbers start counting in the last six bytes.
    pub start: i64,
    /// The drawn UUID without its last six bytes.
    high: u128,
}

impl BatchIds {
    /// A batch for one statement, starting at a random point of its millisecond's range.
    pub fn draw() -> Self {
        let drawn = Uuid::now_v7().as_u128();
        let high = drawn & !LOW_48;
        let prefix = format!("{:020x}", high >> 48);
        let start = (drawn & ((1 << 46) - 1)) as i64;
        Self {
            prefix,
            start,
            high,
        }
    }

    /// The id `syncguard_batch_id` gives row `n` (1-based) of the batch.
    pub fn id(&self, n: i64) -> Uuid {
        Uuid::from_u128(self.high | ((self.start + n) as u128 & LOW_48))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_a_batch_are_version_7_and_ascend_in_row_order() {
        let batch = BatchIds::draw();
        assert_eq!(batch.prefix.len(), 20);
        assert!(batch.start < 1 << 46);
        let first = batch.id(1);
        let second = batch.id(2);
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        assert!(first < second);
        assert_ne!(BatchIds::draw().id(1), first);
    }
}
