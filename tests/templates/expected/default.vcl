vcl 4.1;
backend web1 {
    .host = "10.0.1.11";
    .port = "8080";
    # before web2
}
backend web2 {
    .host = "10.0.1.12";
    .port = "8080";
    # after web1
}
