export * from 'openpgp';
