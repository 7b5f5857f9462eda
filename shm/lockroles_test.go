package shm

func registerLockRoles() {}
