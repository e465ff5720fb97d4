//! The Windows service (windows-service crate): registered by `carryover service
//! install`, started by the SCM at boot, it runs the work it is given (the restore when
//! one is due, then the outbox) and tells the SCM how it ended.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name in the SCM.
pub const SERVICE_NAME: &str = "carryover";
const DISPLAY_NAME: &str = "carryover: restore after Change OS";
const DESCRIPTION: &str = "Restores the settings and data carried over from the previous \
    operating system on the first boot after a Change OS, and reports to the orchestrator.";

/// The work of the running service; it polls `stopping` and returns an exit code.
pub type Work = fn(stopping: &dyn Fn() -> bool) -> i32;

static WORK: OnceLock<Work> = OnceLock::new();
static STOPPING: AtomicBool = AtomicBool::new(false);

fn other(e: windows_service::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Registers (or updates) the service: started automatically at boot as LocalSystem,
/// running `<exe> service run`.
pub fn install_service(exe: &Path) -> io::Result<()> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(other)?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.to_path_buf(),
        launch_arguments: vec!["service".into(), "run".into()],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS;
    let service = match manager.open_service(SERVICE_NAME, access) {
        Ok(s) => {
            s.change_config(&info).map_err(other)?;
            s
        }
        Err(_) => manager.create_service(&info, access).map_err(other)?,
    };
    // a description is a nicety: Wine, for one, does not keep it
    let _ = service.set_description(DESCRIPTION);
    Ok(())
}

/// Stops (waiting up to 30 s) and deletes the service; false when it was not installed.
pub fn uninstall_service() -> io::Result<bool> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(other)?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let Ok(service) = manager.open_service(SERVICE_NAME, access) else {
        return Ok(false);
    };
    if service.query_status().map_err(other)?.current_state != ServiceState::Stopped {
        let _ = service.stop();
        for _ in 0..60 {
            std::thread::sleep(Duration::from_millis(500));
            if service
                .query_status()
                .is_ok_and(|s| s.current_state == ServiceState::Stopped)
            {
                break;
            }
        }
    }
    service.delete().map_err(other)?;
    Ok(true)
}

/// The service's state as the SCM reports it (`running`, `stopped`, …); `None` when it
/// is not installed.
pub fn service_state() -> io::Result<Option<String>> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(other)?;
    let Ok(service) = manager.open_service(SERVICE_NAME, ServiceAccess::QUERY_STATUS) else {
        return Ok(None);
    };
    let st = service.query_status().map_err(other)?;
    Ok(Some(
        match st.current_state {
            ServiceState::Stopped => "stopped",
            ServiceState::StartPending => "start-pending",
            ServiceState::StopPending => "stop-pending",
            ServiceState::Running => "running",
            _ => "other",
        }
        .into(),
    ))
}

/// Hands the process to the SCM (only works when the SCM started it) and runs `work`
/// as the service.
pub fn run_service(work: Work) -> io::Result<()> {
    let _ = WORK.set(work);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(other)
}

define_windows_service!(ffi_service_main, service_main);

fn status(state: ServiceState, code: i32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: if code == 0 {
            ServiceExitCode::Win32(0)
        } else {
            ServiceExitCode::ServiceSpecific(code as u32)
        },
        checkpoint: 0,
        wait_hint: Duration::default(),
        process_id: None,
    }
}

fn service_main(_args: Vec<OsString>) {
    let handler = |c| match c {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            STOPPING.store(true, Ordering::SeqCst);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(SERVICE_NAME, handler) else {
        return;
    };
    let _ = handle.set_service_status(status(ServiceState::Running, 0));
    let code = match WORK.get() {
        Some(work) => work(&|| STOPPING.load(Ordering::SeqCst)),
        None => 1,
    };
    let _ = handle.set_service_status(status(ServiceState::Stopped, code));
}
