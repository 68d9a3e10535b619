#!/bin/sh
# Regenerates the test certificates in this folder (run from this folder).
# A private test CA signs a server certificate (localhost, 127.0.0.1, ::1) and a
# client certificate; "untrusted" is a self-signed server certificate that no
# test trusts; server_encrypted.key is server.key under the password "pyrite".
set -e
DAYS=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $DAYS \
    -keyout ca.key -out ca.crt -subj "/CN=pyrite test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
for who in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout $who.key -out $who.csr -subj "/CN=pyrite test $who"
done
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > server.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' > client.ext
for who in server client; do
    openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days $DAYS \
        -extfile $who.ext -out $who.crt
done
openssl ec -in server.key -aes256 -passout pass:pyrite -out server_encrypted.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $DAYS \
    -keyout untrusted.key -out untrusted.crt -subj "/CN=pyrite untrusted server" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
rm -f server.csr client.csr server.ext client.ext ca.srl
