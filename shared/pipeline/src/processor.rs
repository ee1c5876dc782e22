//! The processors a run names, as a type: parsed once from FaceFusion's names, then matched on.

use std::fmt;

/// A processor this engine runs, in FaceFusion 3.5.3's naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Processor {
    AgeModifier,
    BackgroundRemover,
    DeepSwapper,
    ExpressionRestorer,
    FaceDebugger,
    FaceEditor,
    FaceEnhancer,
    FaceSwapper,
    FrameColorizer,
    FrameEnhancer,
    LipSyncer,
}

impl Processor {
    /// Every processor, in the order `/processors` and the help list them.
    pub const ALL: [Processor; 11] = [
        Self::AgeModifier,
        Self::BackgroundRemover,
        Self::DeepSwapper,
        Self::ExpressionRestorer,
        Self::FaceDebugger,
        Self::FaceEditor,
        Self::FaceEnhancer,
        Self::FaceSwapper,
        Self::FrameColorizer,
        Self::FrameEnhancer,
        Self::LipSyncer,
    ];

    /// FaceFusion's name (`face_swapper`).
    pub fn name(self) -> &'static str {
        match self {
            Self::AgeModifier => "age_modifier",
            Self::BackgroundRemover => "background_remover",
            Self::DeepSwapper => "deep_swapper",
            Self::ExpressionRestorer => "expression_restorer",
            Self::FaceDebugger => "face_debugger",
            Self::FaceEditor => "face_editor",
            Self::FrameColorizer => "frame_colorizer",
            Self::FaceEnhancer => "face_enhancer",
            Self::FaceSwapper => "face_swapper",
            Self::FrameEnhancer => "frame_enhancer",
            Self::LipSyncer => "lip_syncer",
        }
    }

    /// The processor named `name`; `None` for names FaceFusion does not have.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|processor| processor.name() == name)
    }

    /// Whether it works on faces (and so needs face analysis); the others work on whole frames.
    pub fn works_on_faces(self) -> bool {
        !matches!(self, Self::FrameEnhancer | Self::FrameColorizer | Self::BackgroundRemover)
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<&str> for Processor {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for processor in Processor::ALL {
            assert_eq!(Processor::from_name(processor.name()), Some(processor));
        }
        assert_eq!(Processor::from_name("face_morpher"), None);
        assert!(!Processor::FrameEnhancer.works_on_faces());
        assert!(!Processor::BackgroundRemover.works_on_faces());
        assert!(Processor::ExpressionRestorer.works_on_faces());
        assert!(Processor::LipSyncer.works_on_faces());
    }
}
