//! The volumes with drive letters (file system, label, serial, size) and the raw disks
//! behind them (`\\.\PhysicalDriveN`), which the same probe code reads as on Linux.

use std::io;
use std::path::PathBuf;

use windows_sys::Win32::Storage::FileSystem::{
    GetDiskFreeSpaceExW, GetDriveTypeW, GetLogicalDriveStringsW, GetVolumeInformationW,
};

use super::{from_wide_slice, wide_str};
use crate::state::windows::WinVolume;

const DRIVE_FIXED: u32 = 3;

/// The fixed volumes with a drive letter.
pub fn volumes() -> io::Result<Vec<WinVolume>> {
    let mut buf = [0u16; 512];
    // SAFETY: `buf` has the room passed.
    let n = unsafe { GetLogicalDriveStringsW(buf.len() as u32, buf.as_mut_ptr()) } as usize;
    if n == 0 || n > buf.len() {
        return Err(io::Error::last_os_error());
    }
    let windir = std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\Windows".into());
    let mut out = Vec::new();
    for root in buf[..n].split(|&u| u == 0).filter(|s| !s.is_empty()) {
        let mount = String::from_utf16_lossy(root);
        let w = wide_str(&mount);
        // SAFETY: `w` is NUL-terminated.
        if unsafe { GetDriveTypeW(w.as_ptr()) } != DRIVE_FIXED {
            continue;
        }
        let (mut label, mut fs) = ([0u16; 261], [0u16; 261]);
        let (mut serial, mut maxlen, mut flags) = (0u32, 0u32, 0u32);
        // SAFETY: the buffers have the sizes passed.
        let ok = unsafe {
            GetVolumeInformationW(
                w.as_ptr(),
                label.as_mut_ptr(),
                label.len() as u32,
                &mut serial,
                &mut maxlen,
                &mut flags,
                fs.as_mut_ptr(),
                fs.len() as u32,
            )
        };
        if ok == 0 {
            continue; // no medium, or a volume Windows cannot read
        }
        let (mut free, mut total) = (0u64, 0u64);
        // SAFETY: the out pointers are valid or null.
        unsafe { GetDiskFreeSpaceExW(w.as_ptr(), &mut free, &mut total, std::ptr::null_mut()) };
        out.push(WinVolume {
            system: windir
                .get(..2)
                .is_some_and(|d| mount.get(..2).is_some_and(|m| m.eq_ignore_ascii_case(d))),
            mount,
            label: from_wide_slice(&label),
            filesystem: from_wide_slice(&fs),
            serial: format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff),
            total_bytes: total,
            free_bytes: free,
        });
    }
    Ok(out)
}

/// The volume holding `path`: its root (`D:\\`), file system (lower case, as blkid
/// names them) and serial (`1A2B3C4D`); `None` when Windows cannot say.
pub fn volume_of(path: &std::path::Path) -> Option<(PathBuf, String, String)> {
    use windows_sys::Win32::Storage::FileSystem::GetVolumePathNameW;
    let w = super::wide(path.as_os_str());
    let mut root = [0u16; 1024];
    // SAFETY: `root` has the room passed.
    if unsafe { GetVolumePathNameW(w.as_ptr(), root.as_mut_ptr(), root.len() as u32) } == 0 {
        return None;
    }
    let mut fs = [0u16; 261];
    let mut serial = 0u32;
    // SAFETY: the buffers have the sizes passed; the others may be null.
    let ok = unsafe {
        GetVolumeInformationW(
            root.as_ptr(),
            std::ptr::null_mut(),
            0,
            &mut serial,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            fs.as_mut_ptr(),
            fs.len() as u32,
        )
    };
    if ok == 0 {
        return None;
    }
    let fs = match from_wide_slice(&fs).to_ascii_lowercase().as_str() {
        "fat32" | "fat" => "vfat".to_string(),
        other => other.to_string(),
    };
    Some((
        PathBuf::from(from_wide_slice(&root)),
        fs,
        format!("{serial:08X}"),
    ))
}

/// The physical disks that can be opened (`\\.\PhysicalDrive0` …), by number.
pub fn physical_disks() -> Vec<(u32, std::fs::File)> {
    (0..64)
        .filter_map(|i| {
            std::fs::File::open(format!(r"\\.\PhysicalDrive{i}"))
                .ok()
                .map(|f| (i, f))
        })
        .collect()
}

/// The number of the physical disk holding the system drive (`\\.\C:`).
pub fn system_disk_number() -> Option<u32> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::IO::DeviceIoControl;
    use windows_sys::Win32::System::Ioctl::{
        IOCTL_STORAGE_GET_DEVICE_NUMBER, STORAGE_DEVICE_NUMBER,
    };
    let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".into());
    let f = std::fs::File::open(format!(r"\\.\{drive}")).ok()?;
    let mut n = STORAGE_DEVICE_NUMBER::default();
    let mut got = 0u32;
    // SAFETY: `n` is the documented out structure of this control code.
    let ok = unsafe {
        DeviceIoControl(
            f.as_raw_handle(),
            IOCTL_STORAGE_GET_DEVICE_NUMBER,
            std::ptr::null(),
            0,
            (&mut n as *mut STORAGE_DEVICE_NUMBER).cast(),
            std::mem::size_of::<STORAGE_DEVICE_NUMBER>() as u32,
            &mut got,
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(n.DeviceNumber)
}
