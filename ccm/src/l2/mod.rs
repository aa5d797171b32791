//! Layer-2 announcement in the speaker: who the speakers are and what they can announce on.

#[cfg_attr(
    not(test),
    expect(
        dead_code,
        unused_imports,
        reason = "the speaker starts the membership with the responder (issue 14); until then only tests use it"
    )
)]
pub(crate) mod membership;
