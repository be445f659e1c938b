-- Each user's language (NULL: the install-wide default from settings or CRM_LANGUAGE).
ALTER TABLE users ADD COLUMN language VARCHAR;
