//! Integer units. Each measure is its own type so seconds and metres never mix;
//! floats exist only at the boundary (readers and reports).
//!
//! The scale of a unit is set by whoever builds the [`crate::Problem`]: the Solomon
//! reader uses tenths (DIMACS convention), the field-service model seconds and metres.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, Neg, Sub, SubAssign};

macro_rules! measure {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            pub const ZERO: Self = Self(0);
            pub const MAX: Self = Self(i64::MAX / 4);
            #[inline]
            pub const fn get(self) -> i64 {
                self.0
            }
            /// `max(self, 0)`: the positive part, e.g. of an excess.
            #[inline]
            pub fn positive_part(self) -> Self {
                Self(self.0.max(0))
            }
        }
        impl Add for $name {
            type Output = Self;
            #[inline]
            fn add(self, o: Self) -> Self {
                Self(self.0 + o.0)
            }
        }
        impl Sub for $name {
            type Output = Self;
            #[inline]
            fn sub(self, o: Self) -> Self {
                Self(self.0 - o.0)
            }
        }
        impl AddAssign for $name {
            #[inline]
            fn add_assign(&mut self, o: Self) {
                self.0 += o.0;
            }
        }
        impl SubAssign for $name {
            #[inline]
            fn sub_assign(&mut self, o: Self) {
                self.0 -= o.0;
            }
        }
        impl Neg for $name {
            type Output = Self;
            #[inline]
            fn neg(self) -> Self {
                Self(-self.0)
            }
        }
        impl Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                Self(iter.map(|x| x.0).sum())
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

measure!(
    /// A point in time or a length of time, in the problem's time unit.
    Duration
);
measure!(
    /// A travelled distance, in the problem's distance unit.
    Distance
);
measure!(
    /// An objective value. Distances and durations become costs through a vehicle's rates.
    Cost
);
measure!(
    /// An amount of capacity (e.g. returned modems in a van, or demand in Solomon).
    Load
);

/// Cost of a quantity at an integer rate (cost units per unit of the quantity).
impl Mul<i64> for Cost {
    type Output = Cost;
    #[inline]
    fn mul(self, rate: i64) -> Cost {
        Cost(self.0 * rate)
    }
}

impl Distance {
    #[inline]
    pub fn cost(self, rate: i64) -> Cost {
        Cost(self.0 * rate)
    }
}

impl Duration {
    #[inline]
    pub fn cost(self, rate: i64) -> Cost {
        Cost(self.0 * rate)
    }
}

impl Load {
    #[inline]
    pub fn cost(self, rate: i64) -> Cost {
        Cost(self.0 * rate)
    }
}
