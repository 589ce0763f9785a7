// @peculiar/x509 2.x resolves its ASN.1 codecs through tsyringe, which needs a Reflect metadata polyfill
// evaluated first; every identity module imports x509 through here so the order is guaranteed.
import 'reflect-metadata';

export * from '@peculiar/x509';
