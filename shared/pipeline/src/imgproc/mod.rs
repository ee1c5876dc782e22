//! Image operations with OpenCV's exact numerics, because FaceFusion's pixels depend on them.

pub mod blur;
pub mod color;
pub mod color_match;
pub mod contour;
pub mod draw;
pub mod resize;
pub mod warp;
