//! The 2×3 affine matrix that face crops, warps and paste-back share. Its own module so that the
//! geometry (which builds matrices) and the warp (which applies them) both import it, not each other.

/// A 2×3 affine matrix `[[a, b, tx], [c, d, ty]]` mapping (x, y) to (a·x + b·y + tx, c·x + d·y + ty).
pub type Affine = [[f64; 3]; 2];
