//! The names of common server packages across package families (Debian/Ubuntu's dpkg,
//! RHEL/Rocky/Fedora's rpm, Alpine's apk): apache2 ↔ httpd, cron ↔ cronie, bind9 ↔ bind …
//! A package with no row keeps its name (most names agree across families).

/// One row: the same software under (dpkg, rpm, apk); `""` where a family has none.
const TABLE: &[(&str, &str, &str)] = &[
    ("apache2", "httpd", "apache2"),
    ("apache2-utils", "httpd-tools", "apache2-utils"),
    ("libapache2-mod-php", "php", "php-apache2"),
    ("nginx", "nginx", "nginx"),
    ("nginx-light", "nginx", "nginx"),
    ("nginx-full", "nginx", "nginx"),
    ("nginx-extras", "nginx", "nginx"),
    ("cron", "cronie", "cronie"),
    ("anacron", "cronie-anacron", ""),
    ("bind9", "bind", "bind"),
    ("bind9-utils", "bind-utils", "bind-tools"),
    ("bind9-dnsutils", "bind-utils", "bind-tools"),
    ("dnsutils", "bind-utils", "bind-tools"),
    ("mariadb-server", "mariadb-server", "mariadb"),
    ("mariadb-client", "mariadb", "mariadb-client"),
    ("default-mysql-server", "mariadb-server", "mariadb"),
    ("mysql-server", "mysql-server", "mariadb"),
    ("mysql-client", "mysql", "mariadb-client"),
    ("postgresql", "postgresql-server", "postgresql"),
    ("postgresql-client", "postgresql", "postgresql-client"),
    (
        "postgresql-contrib",
        "postgresql-contrib",
        "postgresql-contrib",
    ),
    ("redis-server", "redis", "redis"),
    ("redis", "redis", "redis"),
    ("memcached", "memcached", "memcached"),
    ("php-fpm", "php-fpm", "php-fpm"),
    ("php-cli", "php-cli", "php"),
    ("php-mysql", "php-mysqlnd", "php-mysqli"),
    ("php-pgsql", "php-pgsql", "php-pgsql"),
    ("openssh-server", "openssh-server", "openssh-server"),
    ("openssh-client", "openssh-clients", "openssh-client"),
    ("chrony", "chrony", "chrony"),
    ("ntp", "ntp", "openntpd"),
    ("ntpsec", "ntpsec", ""),
    ("haproxy", "haproxy", "haproxy"),
    ("keepalived", "keepalived", "keepalived"),
    ("squid", "squid", "squid"),
    ("vsftpd", "vsftpd", "vsftpd"),
    ("samba", "samba", "samba"),
    ("nfs-kernel-server", "nfs-utils", "nfs-utils"),
    ("nfs-common", "nfs-utils", "nfs-utils"),
    ("rsync", "rsync", "rsync"),
    ("git", "git", "git"),
    ("curl", "curl", "curl"),
    ("wget", "wget", "wget"),
    ("vim", "vim-enhanced", "vim"),
    ("python3", "python3", "python3"),
    ("python3-pip", "python3-pip", "py3-pip"),
    ("nodejs", "nodejs", "nodejs"),
    ("default-jdk", "java-17-openjdk-devel", "openjdk17"),
    ("default-jre", "java-17-openjdk", "openjdk17-jre"),
    (
        "openjdk-17-jre-headless",
        "java-17-openjdk-headless",
        "openjdk17-jre-headless",
    ),
    ("tomcat10", "tomcat", "tomcat"),
    ("docker.io", "moby-engine", "docker"),
    ("podman", "podman", "podman"),
    ("fail2ban", "fail2ban", "fail2ban"),
    ("postfix", "postfix", "postfix"),
    ("dovecot-core", "dovecot", "dovecot"),
    ("rsyslog", "rsyslog", "rsyslog"),
    ("logrotate", "logrotate", "logrotate"),
    ("sudo", "sudo", "sudo"),
    ("lvm2", "lvm2", "lvm2"),
    ("xfsprogs", "xfsprogs", "xfsprogs"),
    ("nfs-client", "nfs-utils", "nfs-utils"),
    ("zabbix-agent", "zabbix-agent", "zabbix-agent"),
    (
        "prometheus-node-exporter",
        "node_exporter",
        "prometheus-node-exporter",
    ),
    ("certbot", "certbot", "certbot"),
    ("unzip", "unzip", "unzip"),
    ("tmux", "tmux", "tmux"),
    ("htop", "htop", "htop"),
];

fn column(family: &str) -> Option<usize> {
    match family {
        "dpkg" => Some(0),
        "rpm" => Some(1),
        "apk" => Some(2),
        _ => None,
    }
}

fn pick(row: &(&'static str, &'static str, &'static str), col: usize) -> &'static str {
    [row.0, row.1, row.2][col]
}

/// The name of `name` (a package of family `from`) in family `to`: `Some(same)` within a
/// family, the table's entry across, the same name when the table has no row, and `None`
/// when the table says the other family has no such package.
pub fn map(name: &str, from: &str, to: &str) -> Option<String> {
    if from == to {
        return Some(name.to_string());
    }
    let (Some(f), Some(t)) = (column(from), column(to)) else {
        return Some(name.to_string());
    };
    // versioned names: postgresql-15 → postgresql-server, php8.2-fpm → php-fpm
    let base = unversioned(name);
    match TABLE
        .iter()
        .find(|r| pick(r, f) == name || pick(r, f) == base)
    {
        Some(row) => {
            let n = pick(row, t);
            (!n.is_empty()).then(|| n.to_string())
        }
        None => Some(name.to_string()),
    }
}

/// `postgresql-15` → `postgresql`, `php8.2-fpm` → `php-fpm`, `openjdk-17-jre` unchanged.
pub fn unversioned(name: &str) -> String {
    if let Some((head, tail)) = name.rsplit_once('-')
        && !tail.is_empty()
        && tail.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return head.to_string();
    }
    if let Some(rest) = name.strip_prefix("php")
        && let Some((ver, tail)) = rest.split_once('-')
        && !ver.is_empty()
        && ver.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return format!("php-{tail}");
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cross_families() {
        assert_eq!(map("httpd", "rpm", "dpkg").as_deref(), Some("apache2"));
        assert_eq!(map("apache2", "dpkg", "rpm").as_deref(), Some("httpd"));
        assert_eq!(map("cronie", "rpm", "dpkg").as_deref(), Some("cron"));
        assert_eq!(
            map("postgresql-15", "dpkg", "rpm").as_deref(),
            Some("postgresql-server")
        );
        assert_eq!(map("php8.2-fpm", "dpkg", "rpm").as_deref(), Some("php-fpm"));
        assert_eq!(map("ntpsec", "dpkg", "apk"), None);
        assert_eq!(map("jq", "rpm", "dpkg").as_deref(), Some("jq"));
        assert_eq!(
            map("postgresql-15", "dpkg", "dpkg").as_deref(),
            Some("postgresql-15")
        );
    }
}
