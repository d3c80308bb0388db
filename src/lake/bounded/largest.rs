//! The largest single value of an array, for the limits on values that operators and functions
//! copy ([`super`], and the guards over joins in `serve`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;

/// The bytes of the largest value of `array`, or 0 when no value can hold more than `limit`
/// (the whole column is no larger). Lists count their elements at the average element size.
pub(crate) fn largest_value(array: &ArrayRef, limit: usize) -> usize {
    if array.get_array_memory_size() <= limit {
        return 0;
    }
    let widest = |windows: &mut dyn Iterator<Item = usize>| windows.max().unwrap_or(0);
    match array.data_type() {
        DataType::Utf8 => widest(&mut array.as_string::<i32>().offsets().lengths()),
        DataType::LargeUtf8 => widest(&mut array.as_string::<i64>().offsets().lengths()),
        DataType::Binary => widest(&mut array.as_binary::<i32>().offsets().lengths()),
        DataType::LargeBinary => widest(&mut array.as_binary::<i64>().offsets().lengths()),
        DataType::Utf8View => widest(&mut array.as_string_view().lengths().map(|n| n as usize)),
        DataType::BinaryView => widest(&mut array.as_binary_view().lengths().map(|n| n as usize)),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            elements(list.values(), &mut list.offsets().lengths(), limit)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            elements(list.values(), &mut list.offsets().lengths(), limit)
        }
        DataType::Map(..) => {
            let map = array.as_map();
            let entries: ArrayRef = Arc::new(map.entries().clone());
            elements(&entries, &mut map.offsets().lengths(), limit)
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|c| largest_value(c, limit))
            .sum(),
        DataType::Dictionary(..) => array
            .as_any_dictionary_opt()
            .map_or(0, |d| largest_value(d.values(), limit)),
        _ => 0,
    }
}

/// The largest list of `counts` elements of `values`, at their average size, or the largest
/// element, whichever is more.
fn elements(values: &ArrayRef, counts: &mut dyn Iterator<Item = usize>, limit: usize) -> usize {
    let each = values.get_array_memory_size() / values.len().max(1);
    let longest = counts.max().unwrap_or(0);
    (longest * each.max(1)).max(largest_value(values, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 4096;

    #[test]
    fn the_largest_value_of_each_kind_of_column() {
        use datafusion::arrow::array::{LargeStringArray, ListArray, StringArray, StringViewArray};
        use datafusion::arrow::datatypes::Int64Type;
        let long = "y".repeat(LIMIT * 2);
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", &long, "b"]));
        assert_eq!(largest_value(&strings, LIMIT), LIMIT * 2);
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![long.as_str()]));
        assert_eq!(largest_value(&large, LIMIT), LIMIT * 2);
        let views: ArrayRef = Arc::new(StringViewArray::from(vec!["a", &long]));
        assert_eq!(largest_value(&views, LIMIT), LIMIT * 2);
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some((0..2000).map(Some).collect::<Vec<_>>()),
            Some(vec![Some(1)]),
        ]));
        assert!(largest_value(&lists, LIMIT) >= 2000 * 8);
        let small: ArrayRef = Arc::new(StringArray::from(vec!["a"; 10]));
        assert_eq!(largest_value(&small, LIMIT), 0);
    }
}
