-- One database per node of docker/compose.yaml, owned by the application
-- role (psql variable `owner`), created on PostgreSQL's first start. The
-- nodes make their own schema (`hfed db upgrade` before `hfed serve`).
CREATE DATABASE hotline_dk OWNER :"owner";
CREATE DATABASE hotline_nl OWNER :"owner";
CREATE DATABASE hotline_de OWNER :"owner";
CREATE DATABASE secretariat OWNER :"owner";
