//! Frame processors, each as FaceFusion 3.5.3 runs it.

pub mod face_swapper;
