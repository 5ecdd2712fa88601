//! `dasnas`: training-free scores of neural-architecture cells (NASWOT and the
//! DAS decomposition into distinguishing ability D and activation units N_A).

pub mod error;
pub mod eval;
pub mod ops;
pub mod score;
pub mod tensor;

pub use error::{Error, Result};
pub use tensor::{Shape, Tensor};
