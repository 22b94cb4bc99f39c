// The LDAP directory provider (being written).
