#!/bin/sh
# issued 15 Jan 2024
# renew after 14/11/2023
openssl x509 -checkend 2592000 -noout -in /etc/ssl/shop.pem
