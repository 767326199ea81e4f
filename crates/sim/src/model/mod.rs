//! Glass dynamics (deterministic): material clock, KWW, aging, pressure branches, campaign
//! protocol, avalanches, and the exact ground truth of the correlations they produce.
//!
//! Input: the sample configuration ([`crate::config::sample`]). Output: per scan a
//! [`Dynamics`] (β, clock u(t) with t in s since the scan start, replacement events) that the
//! speckle synthesiser consumes, and [`truth::Truth`], the expected E\[C(t1,t2)\] and g2 per
//! q-bin (dimensionless, → 1 at long lags) including finite K, modes, static fields and frame
//! integration. Analysis code is compared with the truth, never with raw model parameters.
//!
//! Reference: docs/model.md §2 (material clock; Ruta et al. PRL 109, 165701, 2012; Evenson et al.
//! PRL 115, 175701, 2015).

pub mod avalanche;
pub mod campaign;
pub mod clock;
pub mod domains;
pub mod dynamics;
pub mod pressure;
pub mod truth;

pub use avalanche::{AvalancheModel, AvalancheTimes};
pub use campaign::{Acceleration, Aging, Campaign, Fluctuations, Isobar, ScanFacts};
pub use clock::{isf, Clock, ClockTable, KwwExponent, TauLaw};
pub use domains::{DomainEvent, DomainSpec, Domains};
pub use dynamics::Dynamics;
pub use pressure::{Direction, PressureResponse, TauBranch};
pub use truth::{BinOptics, PixelOptics, Sampling, Truth};
