-- One database per node (created on PostgreSQL's first start).
CREATE DATABASE hotline_dk;
CREATE DATABASE hotline_nl;
CREATE DATABASE hotline_de;
CREATE DATABASE secretariat;
