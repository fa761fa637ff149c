//! Root expansion and containment checks.

use super::*;

#[test]
fn expansion() {
    let home = Path::new("/home/u");
    assert_eq!(expand_root("~", Some(home)).unwrap(), PathBuf::from("/home/u"));
    assert_eq!(
        expand_root("~/.itervox/workspaces", Some(home)).unwrap(),
        PathBuf::from("/home/u/.itervox/workspaces")
    );
    assert_eq!(expand_root("/srv/w", None).unwrap(), PathBuf::from("/srv/w"));
    assert_eq!(
        expand_root("rel/w", Some(home)).unwrap(),
        PathBuf::from("/home/u/rel/w")
    );
    assert!(matches!(expand_root("~/x", None), Err(LayoutError::NoHome { .. })));
    assert!(matches!(expand_root("  ", Some(home)), Err(LayoutError::Empty)));
}

#[test]
fn session_dir_round_trip() {
    let layout = Layout::from_canonical_root(PathBuf::from("/w"));
    let dir = layout.session_dir("s-1");
    assert_eq!(dir, PathBuf::from("/w/.itervox/sessions/s-1"));
    assert_eq!(Layout::of_session_dir(&dir), Some(layout));
    assert_eq!(Layout::of_session_dir(Path::new("/w/other/s-1")), None);
}

#[test]
fn containment_resolves_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::open(tmp.path().join("root").to_str().unwrap(), None).unwrap();
    let root = layout.root().to_path_buf();
    assert!(layout.contains(&root.join("ITX-1")));
    assert!(layout.contains(&root.join("ITX-1").join("deeper")));
    assert!(!layout.contains(&root), "the root itself is not inside");
    assert!(!layout.contains(&root.join("..").join("x")));
    assert!(!layout.contains(tmp.path()));

    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    assert!(!layout.contains(&root.join("escape")));
    assert!(!layout.contains(&root.join("escape").join("new")));
}
