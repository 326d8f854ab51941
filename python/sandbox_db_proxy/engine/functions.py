"""Function policy, layer 3 of the verdict engine (issue 2, "Function policy").

A SELECT can still write, lock, sleep, read server files or run SQL text through the functions
it calls (../shared/notes/read-only-bypasses.md items 8-10: `dblink_exec`, `nextval`,
`pg_import_system_collations`, `query_to_xml`, `LOAD_FILE`, `GET_LOCK`...), and the backend's
read-only transaction stops only some of them. So every function call in the parse tree is judged:

1. the per-dialect *denylist* (with the reason shown to the agent) always wins;
2. the per-dialect *allowlist* of built-ins known to be free of side effects;
3. the per-backend `FunctionCatalog` (PostgreSQL `pg_proc.provolatile`): IMMUTABLE and STABLE
   functions may not run data-modifying statements (the server refuses them), so a relay that
   loaded the catalogue can allow a server's own read-only functions;
4. anything else is an unknown function: blocked unless `allow_unknown_functions`.

Names are compared lower-cased: MySQL and T-SQL function names are case-insensitive, and in
PostgreSQL a quoted mixed-case name is some other (user) function, which stays unknown/blocked.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from . import reasons

# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_SEQ = "advances or sets a sequence, which is a write that no ROLLBACK undoes"
_FILE = "reads or lists files on the database server's disk"
_FILEW = "writes, renames or deletes files on the database server's disk"
_LO = "reads or writes server-side large objects (and lo_import/lo_export reach server files)"
_REMOTE = "opens a new connection to a database, outside this read-only session"
_SIGNAL = "signals or controls other server processes"
_WAL = "controls WAL, backups or replication on the server"
_SLOT = "creates, drops or advances replication slots/origins, which is a persistent write"
_RESET = "resets server statistics, which is a write"
_LOCK = "takes or releases advisory locks, which outlive ROLLBACK and can block other sessions"
_NOTIFY = "sends a notification to other sessions"
_SETCFG = "changes a server setting, possibly the read-only mode itself"
_DYN = "runs an SQL string that the proxy cannot inspect"
_SLEEP = "sleeps, holding a connection and its snapshot (denial of service)"
_XID = "assigns a transaction id, which is a write to the transaction log"
_MAINT = "runs maintenance that changes catalogs or indexes"

# name -> why (shown to the agent as "<name>() <why>")
PG_UNSAFE: dict[str, str] = {
    "nextval": _SEQ, "setval": _SEQ,
    "lastval": "reports the last value from nextval(), which is itself blocked as a write",
    "pg_read_file": _FILE, "pg_read_binary_file": _FILE, "pg_stat_file": _FILE,
    "pg_current_logfile": _FILE,
    "pg_file_write": _FILEW, "pg_file_rename": _FILEW, "pg_file_unlink": _FILEW,
    "pg_file_sync": _FILEW, "pg_logdir_ls": _FILE,
    "loread": _LO, "lowrite": _LO,
    "pg_terminate_backend": _SIGNAL, "pg_cancel_backend": _SIGNAL, "pg_reload_conf": _SIGNAL,
    "pg_rotate_logfile": _SIGNAL, "pg_log_backend_memory_contexts": _SIGNAL,
    "pg_promote": _SIGNAL, "pg_signal_backend": _SIGNAL,
    "pg_switch_wal": _WAL, "pg_switch_xlog": _WAL, "pg_create_restore_point": _WAL,
    "pg_backup_start": _WAL, "pg_backup_stop": _WAL, "pg_start_backup": _WAL,
    "pg_stop_backup": _WAL, "pg_wal_replay_pause": _WAL, "pg_wal_replay_resume": _WAL,
    "pg_xlog_replay_pause": _WAL, "pg_xlog_replay_resume": _WAL, "pg_export_snapshot": _WAL,
    "pg_drop_replication_slot": _SLOT, "pg_replication_slot_advance": _SLOT,
    "pg_stat_statements_reset": _RESET,
    "pg_notify": _NOTIFY,
    "set_config": _SETCFG,
    "query_to_xml": _DYN, "query_to_xmlschema": _DYN, "query_to_xml_and_xmlschema": _DYN,
    "cursor_to_xml": _DYN, "cursor_to_xmlschema": _DYN, "ts_stat": _DYN, "ts_rewrite": _DYN,
    "pg_sleep": _SLEEP, "pg_sleep_for": _SLEEP, "pg_sleep_until": _SLEEP,
    "txid_current": _XID, "pg_current_xact_id": _XID,
    "pg_import_system_collations": _MAINT, "brin_summarize_new_values": _MAINT,
    "brin_summarize_range": _MAINT, "brin_desummarize_range": _MAINT,
    "gin_clean_pending_list": _MAINT, "pg_nextoid": _MAINT, "pg_extension_config_dump": _MAINT,
    "pg_prewarm": _MAINT, "pg_stat_force_next_flush": _RESET,
    "pg_catalog_xact_commit_timestamp_origin": _WAL,
}

# (prefix, why): whole families, including members added by later server versions.
PG_UNSAFE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("dblink", _REMOTE),                      # dblink, dblink_exec, dblink_connect, ...
    ("lo_", _LO),                             # lo_import, lo_export, lo_create, lo_put, ...
    ("pg_ls_", _FILE),                        # pg_ls_dir, pg_ls_logdir, pg_ls_waldir, ...
    ("pg_file_", _FILEW),
    ("pg_advisory", _LOCK), ("pg_try_advisory", _LOCK),
    ("pg_stat_reset", _RESET),
    ("pg_create_", _SLOT),                    # pg_create_*_replication_slot
    ("pg_copy_", _SLOT),                      # pg_copy_*_replication_slot
    ("pg_logical_", _SLOT),                   # pg_logical_slot_get_changes, ..._emit_message
    ("pg_replication_origin", _SLOT),
    ("pg_wal_replay", _WAL),
    ("binary_upgrade_", _MAINT),
    ("query_to_xml", _DYN), ("cursor_to_xml", _DYN),
    ("postgres_fdw", _REMOTE),
)

# Built-ins known to be free of side effects. Volatile members (random, clock_timestamp...)
# are listed on purpose: volatile here means "may return a different value", not "writes".
PG_SAFE: frozenset[str] = frozenset("""
count sum avg min max array_agg string_agg json_agg jsonb_agg json_object_agg jsonb_object_agg
json_agg_strict jsonb_agg_strict json_object_agg_strict jsonb_object_agg_strict
json_object_agg_unique jsonb_object_agg_unique json_object_agg_unique_strict
jsonb_object_agg_unique_strict
bool_and bool_or every bit_and bit_or bit_xor stddev stddev_pop stddev_samp variance var_pop
var_samp corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2
regr_slope regr_sxx regr_sxy regr_syy percentile_cont percentile_disc mode rank dense_rank
percent_rank cume_dist row_number ntile lag lead first_value last_value nth_value xmlagg
range_agg range_intersect_agg any_value
abs ceil ceiling floor round trunc sign sqrt cbrt exp ln log log10 power pow mod div degrees
radians pi sin cos tan asin acos atan atan2 sind cosd tand asind acosd atand atan2d sinh cosh
tanh asinh acosh atanh cot cotd width_bucket gcd lcm factorial scale min_scale trim_scale
random random_normal setseed erf erfc
length char_length character_length octet_length bit_length lower upper initcap btrim ltrim rtrim
lpad rpad left right substr substring position strpos replace translate concat concat_ws format
repeat reverse split_part regexp_replace regexp_match regexp_matches regexp_split_to_array
regexp_split_to_table regexp_count regexp_instr regexp_like regexp_substr starts_with md5 sha224
sha256 sha384 sha512 encode decode to_hex to_bin to_oct ascii chr quote_ident quote_literal
quote_nullable string_to_array string_to_table array_to_string unistr normalize is_normalized
overlay convert convert_from convert_to to_ascii get_bit get_byte set_bit set_byte bit_count
crc32 crc32c parse_ident casefold
now clock_timestamp statement_timestamp transaction_timestamp timeofday date_trunc date_part
extract date_bin age make_date make_time make_timestamp make_timestamptz make_interval
justify_days justify_hours justify_interval to_char to_date to_timestamp to_number isfinite
timezone date_add date_subtract
similar_to_escape like_escape overlaps system_user pg_get_function_sqlbody
json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
row_to_json array_to_json json_object jsonb_object json_array_elements jsonb_array_elements
json_array_elements_text jsonb_array_elements_text json_each jsonb_each json_each_text
jsonb_each_text json_extract_path jsonb_extract_path json_extract_path_text
jsonb_extract_path_text json_object_keys jsonb_object_keys json_array_length jsonb_array_length
json_typeof jsonb_typeof jsonb_pretty jsonb_set jsonb_set_lax jsonb_insert jsonb_strip_nulls
json_strip_nulls jsonb_path_query jsonb_path_query_array jsonb_path_query_first
jsonb_path_exists jsonb_path_match jsonb_path_query_tz jsonb_path_query_array_tz
jsonb_path_query_first_tz jsonb_path_exists_tz jsonb_path_match_tz json_populate_record
jsonb_populate_record json_to_record jsonb_to_record json_to_recordset jsonb_to_recordset
json_populate_recordset jsonb_populate_recordset jsonb_populate_record_valid jsonb_concat
jsonb_contains jsonb_exists jsonb_exists_any jsonb_exists_all jsonb_delete jsonb_delete_path
array_length array_lower array_upper array_ndims array_dims array_position array_positions
array_append array_prepend array_cat array_remove array_replace cardinality unnest array_fill
trim_array generate_subscripts array_sample array_shuffle array_reverse array_sort
generate_series
pg_typeof format_type to_regclass to_regproc to_regprocedure to_regtype to_regtypemod
to_regnamespace to_regrole to_regoper to_regoperator to_regcollation pg_input_is_valid
pg_input_error_info num_nulls num_nonnulls
current_database current_schema current_schemas current_user session_user current_catalog
current_role version current_setting pg_backend_pid inet_client_addr inet_client_port
inet_server_addr inet_server_port pg_postmaster_start_time pg_conf_load_time pg_is_in_recovery
pg_is_wal_replay_paused pg_get_wal_replay_pause_state pg_last_wal_receive_lsn
pg_last_wal_replay_lsn pg_last_xact_replay_timestamp pg_current_wal_lsn
pg_current_wal_insert_lsn pg_current_wal_flush_lsn pg_wal_lsn_diff pg_walfile_name
pg_trigger_depth pg_jit_available pg_listening_channels pg_blocking_pids
pg_safe_snapshot_blocking_pids pg_notification_queue_usage pg_is_other_temp_schema
pg_my_temp_schema pg_client_encoding pg_encoding_to_char pg_char_to_encoding
has_any_column_privilege has_column_privilege has_database_privilege
has_foreign_data_wrapper_privilege has_function_privilege has_language_privilege
has_parameter_privilege has_schema_privilege has_sequence_privilege has_server_privilege
has_table_privilege has_tablespace_privilege has_type_privilege has_largeobject_privilege
pg_has_role row_security_active
pg_table_is_visible pg_type_is_visible pg_function_is_visible pg_operator_is_visible
pg_opclass_is_visible pg_opfamily_is_visible pg_collation_is_visible pg_conversion_is_visible
pg_statistics_obj_is_visible pg_ts_config_is_visible pg_ts_dict_is_visible
pg_ts_parser_is_visible pg_ts_template_is_visible
pg_get_viewdef pg_get_constraintdef pg_get_indexdef pg_get_expr pg_get_functiondef
pg_get_function_arguments pg_get_function_identity_arguments pg_get_function_result
pg_get_function_arg_default pg_get_triggerdef pg_get_ruledef pg_get_userbyid
pg_get_serial_sequence pg_get_keywords pg_get_partkeydef pg_get_statisticsobjdef
pg_get_statisticsobjdef_columns pg_get_statisticsobjdef_expressions pg_get_catalog_foreign_keys
pg_get_object_address pg_identify_object pg_identify_object_as_address pg_describe_object
pg_get_partition_constraintdef pg_get_replica_identity_index pg_options_to_table
pg_tablespace_location pg_tablespace_databases pg_settings_get_flags pg_get_acl
obj_description col_description shobj_description
pg_size_pretty pg_size_bytes pg_relation_size pg_total_relation_size pg_table_size
pg_indexes_size pg_database_size pg_column_size pg_tablespace_size pg_relation_filenode
pg_relation_filepath pg_filenode_relation pg_column_compression pg_column_toast_chunk_id
pg_partition_tree pg_partition_root pg_partition_ancestors pg_index_column_has_property
pg_index_has_property pg_indexam_has_property
txid_current_snapshot txid_snapshot_xmin txid_snapshot_xmax txid_snapshot_xip
txid_visible_in_snapshot txid_status txid_current_if_assigned pg_current_snapshot
pg_snapshot_xmin pg_snapshot_xmax pg_snapshot_xip pg_visible_in_snapshot pg_xact_status
pg_current_xact_id_if_assigned pg_xact_commit_timestamp pg_last_committed_xact
age mxid_age
host hostmask masklen netmask network broadcast family abbrev set_masklen inet_same_family
inet_merge text
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank
ts_rank_cd ts_headline setweight strip numnode querytree ts_delete ts_filter tsvector_to_array
array_to_tsvector get_current_ts_config ts_lexize ts_parse ts_token_type ts_debug
xpath xpath_exists xml_is_well_formed xml_is_well_formed_document xml_is_well_formed_content
table_to_xml table_to_xmlschema table_to_xml_and_xmlschema xmltext xmlcomment
isempty lower_inc upper_inc lower_inf upper_inf range_merge multirange
enum_first enum_last enum_range
gen_random_uuid uuidv4 uuidv7 uuid_extract_version uuid_extract_timestamp
bool int2 int4 int8 float4 float8 numeric date time timestamp timestamptz interval varchar
bpchar name oid regclass regtype regproc
area center diameter height width radius isclosed isopen npoints pclose popen box circle line
lseg path point polygon bound_box
pg_collation_for pg_get_viewdef pg_sequence_parameters pg_sequence_last_value
pg_available_extensions pg_available_extension_versions pg_show_all_settings
pg_show_all_file_settings pg_timezone_names pg_timezone_abbrevs pg_cursor pg_prepared_statement
pg_config pg_control_checkpoint pg_control_system pg_control_init pg_control_recovery
pg_get_backend_memory_contexts pg_stat_get_numscans
""".split())

# Built-ins that are volatile in pg_proc and are nonetheless on the allowlist on purpose
# (tests check that every other PG_SAFE name is IMMUTABLE or STABLE on the real server).
PG_SAFE_VOLATILE: frozenset[str] = frozenset("""
random random_normal setseed clock_timestamp timeofday gen_random_uuid uuidv4 uuidv7
pg_cursor pg_prepared_statement pg_blocking_pids pg_safe_snapshot_blocking_pids
pg_notification_queue_usage pg_listening_channels pg_show_all_file_settings pg_show_all_settings
pg_get_backend_memory_contexts pg_config pg_control_checkpoint pg_control_system
pg_control_init pg_control_recovery pg_sequence_last_value pg_sequence_parameters
pg_available_extensions pg_available_extension_versions pg_current_wal_lsn
pg_current_wal_insert_lsn pg_current_wal_flush_lsn pg_last_wal_receive_lsn
pg_last_wal_replay_lsn pg_last_xact_replay_timestamp pg_is_in_recovery pg_is_wal_replay_paused
pg_get_wal_replay_pause_state pg_last_committed_xact pg_timezone_names pg_timezone_abbrevs
pg_get_catalog_foreign_keys pg_options_to_table pg_partition_tree pg_partition_ancestors
pg_index_column_has_property pg_jit_available pg_stat_get_numscans pg_get_keywords
txid_current_snapshot pg_current_snapshot txid_current_if_assigned pg_current_xact_id_if_assigned
pg_tablespace_databases ts_debug ts_parse ts_token_type
pg_database_size pg_indexes_size pg_relation_size pg_table_size pg_tablespace_size
pg_total_relation_size pg_xact_commit_timestamp pg_xact_status txid_status
""".split())

# TABLESAMPLE methods shipped with PostgreSQL (tsm_system_rows/tsm_system_time are contrib);
# any other method is a user-installed C handler and stays unknown.
PG_TABLESAMPLE_METHODS = frozenset({"system", "bernoulli", "system_rows", "system_time"})

# Operators and types: a user-defined operator runs a user function, and a cast to a user type
# may run a user cast function, a domain CHECK or a type input function. Only PostgreSQL's own
# (pg_catalog on PostgreSQL 15, from pg_operator / pg_type) are trusted. pglast writes SQL-
# keyword types (integer, double precision, ...) as pg_catalog-qualified internal names.
PG_BUILTIN_OPERATORS: frozenset[str] = frozenset("""
!! !~ !~* !~~ !~~* # ## #- #> #>> % & && &< &<| &> * *< *<= *<> *= *> *>= + - -> ->> -|- / <
<-> << <<= <<| <= <> <@ <^ = > >= >> >>= >^ ? ?# ?& ?- ?-| ?| ?|| @ @-@ @> @? @@ @@@ ^ ^@ | |&>
|/ |>> || ||/ ~ ~* ~<=~ ~<~ ~= ~>=~ ~>~ ~~ ~~* !=
""".split())
PG_BUILTIN_TYPES: frozenset[str] = frozenset("""
aclitem bit bool box bpchar bytea char cid cidr circle date datemultirange daterange float4
float8 gtsvector inet int2 int2vector int4 int4multirange int4range int8 int8multirange int8range
interval json jsonb jsonpath line lseg macaddr macaddr8 money name numeric nummultirange numrange
oid oidvector path pg_brin_bloom_summary pg_brin_minmax_multi_summary pg_dependencies pg_lsn
pg_mcv_list pg_ndistinct pg_node_tree pg_snapshot point polygon refcursor regclass regcollation
regconfig regdictionary regnamespace regoper regoperator regproc regprocedure regrole regtype
text tid time timestamp timestamptz timetz tsmultirange tsquery tsrange tstzmultirange tstzrange
tsvector txid_snapshot uuid varbit varchar xid xid8 xml record unknown
""".split())

# SQL that lets the relay build a FunctionCatalog from the backend's own pg_proc.
PG_PROC_QUERY = (
    "SELECT p.proname, n.nspname, pg_catalog.pg_get_function_identity_arguments(p.oid), "
    "p.provolatile FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
)

# --------------------------------------------------------------------------------------------
# MySQL / MariaDB
# --------------------------------------------------------------------------------------------

_MY_LOCK = "takes, releases or waits for a named user lock (denial of service, survives ROLLBACK)"
_MY_WAIT = "waits for replication on the server (denial of service)"
_MY_UDF = "is a user-defined function that runs operating-system commands"

MYSQL_UNSAFE: dict[str, str] = {
    "load_file": "reads a file from the database server's disk",
    "sleep": _SLEEP, "benchmark": "burns server CPU on purpose (denial of service)",
    "get_lock": _MY_LOCK, "release_lock": _MY_LOCK, "release_all_locks": _MY_LOCK,
    "is_free_lock": _MY_LOCK, "is_used_lock": _MY_LOCK,
    "master_pos_wait": _MY_WAIT, "source_pos_wait": _MY_WAIT, "master_gtid_wait": _MY_WAIT,
    "wait_for_executed_gtid_set": _MY_WAIT, "wait_until_sql_thread_after_gtids": _MY_WAIT,
    "sys_exec": _MY_UDF, "sys_eval": _MY_UDF, "sys_get": _MY_UDF, "sys_set": _MY_UDF,
    "nextval": _SEQ, "setval": _SEQ,
    "lastval": "reports the last value from NEXTVAL(), which is itself blocked as a write",
    "name_const": "is an SQL-injection building block with no analytic use",
    "nextvalue": _SEQ,
}
MYSQL_UNSAFE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("lib_mysqludf_", _MY_UDF),
)

# Functions sqlglot leaves as exp.Anonymous (names it does not model) that are known pure.
MYSQL_SAFE: frozenset[str] = frozenset("""
date_format str_to_date from_unixtime unix_timestamp curdate curtime now sysdate utc_date
utc_time utc_timestamp current_date current_time current_timestamp localtime localtimestamp
date_add date_sub adddate subdate addtime subtime datediff timediff timestampdiff timestampadd
period_add period_diff makedate maketime sec_to_time time_to_sec to_days to_seconds from_days
last_day dayofweek dayofmonth dayofyear weekday weekofyear yearweek quarter month monthname
dayname year week hour minute second microsecond extract convert_tz get_format time_format
date time timestamp
ifnull isnull nullif coalesce if greatest least interval field elt find_in_set strcmp
char_length character_length length octet_length bit_length lower lcase upper ucase trim ltrim
rtrim lpad rpad left right substring substr mid substring_index locate position instr replace
repeat reverse insert concat concat_ws format space ascii ord char hex unhex bin oct conv
soundex quote export_set make_set regexp_replace regexp_instr regexp_substr regexp_like
weight_string to_base64 from_base64 md5 sha sha1 sha2 crc32 compress uncompress
uncompressed_length aes_encrypt aes_decrypt random_bytes des_encrypt des_decrypt encode decode
password old_password sformat natural_sort_key to_char
abs ceil ceiling floor round truncate sign sqrt exp ln log log2 log10 pow power mod div pi
degrees radians sin cos tan asin acos atan atan2 cot rand crc32c
count sum avg min max group_concat std stddev stddev_pop stddev_samp variance var_pop var_samp
bit_and bit_or bit_xor bit_count json_arrayagg json_objectagg row_number rank dense_rank
percent_rank cume_dist ntile lag lead first_value last_value nth_value median
percentile_cont percentile_disc
json_extract json_unquote json_quote json_contains json_contains_path json_keys json_length
json_depth json_type json_valid json_object json_array json_search json_value json_overlaps
json_pretty json_merge json_merge_patch json_merge_preserve json_set json_insert json_replace
json_remove json_array_append json_array_insert json_table json_detailed json_loose
json_compact json_exists json_normalize json_equals json_array_intersect json_object_filter_keys
json_object_to_array json_key_value json_storage_size json_storage_free json_schema_valid
cast convert binary collation charset coercibility
database schema user current_user session_user system_user version connection_id
found_rows row_count last_insert_id uuid uuid_short uuid_to_bin bin_to_uuid is_uuid
inet_aton inet_ntoa inet6_aton inet6_ntoa is_ipv4 is_ipv6 is_ipv4_compat is_ipv4_mapped
extractvalue updatexml column_get column_create column_json column_list column_exists
column_check column_add column_delete
st_astext st_geomfromtext st_x st_y st_distance point
default values row
""".split())

# --------------------------------------------------------------------------------------------
# T-SQL
# --------------------------------------------------------------------------------------------

_TS_REMOTE = "opens a connection to another server or file (ad hoc distributed query)"

TSQL_UNSAFE: dict[str, str] = {
    "openrowset": _TS_REMOTE, "opendatasource": _TS_REMOTE, "openquery": _TS_REMOTE,
    "fn_get_audit_file": _FILE, "fn_xe_file_target_read_file": _FILE,
    "fn_trace_gettable": _FILE, "fn_dblog": _FILE, "fn_dump_dblog": _FILE,
}
TSQL_UNSAFE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("xp_", "is an extended stored procedure that reaches the operating system"),
    ("sp_", "is a system stored procedure, which can change server state"),
)
TSQL_SAFE: frozenset[str] = frozenset("""
getdate sysdatetime sysutcdatetime getutcdate sysdatetimeoffset current_timestamp dateadd object_definition
datediff datediff_big datepart datename year month day eomonth datefromparts datetimefromparts
datetime2fromparts timefromparts smalldatetimefromparts datetimeoffsetfromparts isdate
switchoffset todatetimeoffset datetrunc date_bucket
isnull coalesce nullif iif choose cast convert try_cast try_convert parse try_parse format
len datalength left right substring charindex patindex replace replicate reverse ltrim rtrim
trim upper lower stuff string_agg string_split concat concat_ws quotename space str ascii char
nchar unicode soundex difference string_escape translate greatest least
abs ceiling floor round power sqrt square exp log log10 sign pi rand sin cos tan asin acos atan
atn2 cot degrees radians
count count_big sum avg min max stdev stdevp var varp grouping grouping_id checksum_agg
approx_count_distinct row_number rank dense_rank ntile lag lead first_value last_value
percent_rank cume_dist percentile_cont percentile_disc
json_value json_query isjson json_modify openjson json_object json_array
newid object_id object_name object_schema_name schema_name schema_id db_name db_id user_name
user_id suser_sname suser_name suser_id host_name app_name serverproperty databasepropertyex
objectproperty objectpropertyex columnproperty type_name type_id col_name col_length
hashbytes checksum binary_checksum isnumeric scope_identity ident_current ident_seed
ident_incr error_message error_number error_severity error_state error_line error_procedure
system_user session_user current_user has_perms_by_name is_member is_srvrolemember
generate_series
""".split())

# --------------------------------------------------------------------------------------------
# sqlglot expression classes (MySQL, T-SQL): which modelled functions are pure
# --------------------------------------------------------------------------------------------
# sqlglot turns known function names into classes (LCASE -> Lower, GETDATE -> CurrentTimestamp).
# Its class set spans every dialect (ReadCSV, AIGenerate, ToFile ...), and a dialect can map a
# name to one of them, so a class is trusted only when listed here; any other class is judged
# by its SQL name like an unknown function.
SQLGLOT_SAFE_CLASSES: frozenset[str] = frozenset("""
Abs Acos Acosh AddMonths And AnyValue ApproxDistinct Array ArrayAgg ArrayContains ArraySize
Ascii Asin Asinh Atan Atan2 Atanh Avg BitLength BitwiseAndAgg BitwiseCount BitwiseOrAgg
BitwiseXorAgg ByteLength Case Cast CastToStrType Cbrt Ceil Chr Coalesce Collate Collation
Concat ConcatWs Convert ConvertTimezone ConvertToCharset Corr Cos Cosh Cot Count CountIf
CovarPop CovarSamp CumeDist CurrentDate CurrentDatetime CurrentSchema CurrentTime
CurrentTimestamp CurrentUser CurrentDatabase CurrentVersion Date DateAdd DateDiff
DateFromParts DateStrToDate DateSub DateToDateStr DateTrunc Datetime DatetimeAdd DatetimeDiff
DatetimeSub Day DayOfMonth DayOfWeek DayOfWeekIso DayOfYear Dayname Decode DecodeCase Degrees
DenseRank Elt Encode EndsWith Exists Exp Extract Floor Format FromBase FromBase64 FromBase32
GenerateSeries Greatest GroupConcat Grouping GroupingId Hex Hour If Initcap IsAscii IsInf IsNan
JSONArray JSONArrayAgg JSONArrayContains JSONExtract JSONExtractScalar JSONExtractArray
JSONFormat JSONKeys JSONObject JSONObjectAgg JSONType JSONBContains JSONBExtract
JSONBExtractScalar JSONExists JSONValueArray JSONTable JSONRemove JSONSet JSONArrayAppend
JSONArrayInsert JSONStripNulls JSONCast Lag Last LastDay LastValue Lead Least Left Length
Levenshtein Ln Localtime Localtimestamp Log Lower LowerHex MD5 MD5Digest MakeInterval
MatchAgainst Max Median Min Minute Mode Month Monthname MonthsBetween NthValue Ntile Nullif
Nvl2 OpenJSON Or Overlay Pad ParseJSON PercentRank PercentileCont PercentileDisc Pi Pow
Quarter Radians Rand Rank RegexpExtract RegexpILike RegexpInstr RegexpLike RegexpReplace
RegexpSplit RegexpSubstr RegexpCount Repeat Replace Reverse Right Round RowNumber SHA SHA2
SHA1Digest SHA2Digest Second Sign Sin Sinh Soundex Space Split SplitPart Sqrt StartsWith
Stddev StddevPop StddevSamp StrPosition StrToDate StrToTime StrToUnix Stuff Substring
SubstringIndex Sum Tan Tanh Time TimeAdd TimeDiff TimeFromParts TimeStrToDate TimeStrToTime
TimeStrToUnix TimeSub TimeToStr TimeToTimeStr TimeToUnix TimeTrunc Timestamp TimestampAdd
TimestampDiff TimestampFromParts TimestampSub TimestampTrunc ToBase64 ToChar ToDays ToNumber
Translate Trim Trunc TryCast Typeof Unhex Unicode UnixDate UnixSeconds UnixToStr UnixToTime
UnixToTimeStr Upper UtcDate UtcTime UtcTimestamp Uuid Variance VariancePop Week WeekOfYear
Xor Year YearOfWeek YearOfWeekIso FirstValue First AnonymousAggFunc SessionUser Unnest
Explode Columns Compress NumberToStr StDistance TsOrDsToDate TsOrDsToTimestamp TsOrDsAdd
TsOrDsDiff TsOrDsToTime TsOrDsToDatetime TsOrDsToDateStr WeightString ObjectId DiToDate
DateToDi TsOrDiToDi StrToMap CurrentSessionUser
""".split())

# Functions whose *literal* arguments are SQL text, code or object names the engine would
# have to inspect. A statement calling one is never cached by fingerprint (the fingerprint
# replaces literals by `?`), even when it was allowed (e.g. with allow_unknown_functions).
LITERAL_SENSITIVE: frozenset[str] = frozenset("""
set_config query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml
cursor_to_xmlschema dblink dblink_exec dblink_open dblink_send_query ts_stat ts_rewrite
openrowset openquery opendatasource sp_executesql exec execute load_file
""".split())

_DIALECTS = {
    "postgres": (PG_UNSAFE, PG_UNSAFE_PREFIXES, PG_SAFE),
    "mysql": (MYSQL_UNSAFE, MYSQL_UNSAFE_PREFIXES, MYSQL_SAFE),
    "tsql": (TSQL_UNSAFE, TSQL_UNSAFE_PREFIXES, TSQL_SAFE),
}


def unsafe_reason(dialect: str, name: str) -> str | None:
    """Why `name` is on the dialect's denylist, or None."""
    unsafe, prefixes, _safe = _DIALECTS[dialect]
    name = name.lower()
    why = unsafe.get(name)
    if why is not None:
        return why
    for prefix, why in prefixes:
        if name.startswith(prefix):
            return why
    return None


# --------------------------------------------------------------------------------------------
# Per-backend catalogue (PostgreSQL pg_proc)
# --------------------------------------------------------------------------------------------

_SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
_BUILTIN_SCHEMA = {"postgres": "pg_catalog", "tsql": "sys"}


class FunctionCatalog:
    """Volatility of the functions that exist on one backend, from `pg_proc`.

    A name is as volatile as its most volatile overload (the engine does not resolve argument
    types, so it must assume the worst overload could be the one called).
    """

    __slots__ = ("_by_qualified", "_by_name", "_user_volatile")

    _RANK = {"i": 0, "s": 1, "v": 2}

    def __init__(self) -> None:
        self._by_qualified: dict[tuple[str, str], str] = {}
        self._by_name: dict[str, str] = {}
        # names with a VOLATILE overload outside the system schemas: such a function could
        # capture an unqualified call of a built-in of the same name (overload resolution
        # across the search_path), so the built-in allowlist alone no longer decides.
        self._user_volatile: set[str] = set()

    @classmethod
    def from_pg_proc(cls, rows: Iterable[tuple[str, str, str, str]]) -> "FunctionCatalog":
        """rows: (proname, nspname, identity-argument types, provolatile 'i'|'s'|'v'),
        as returned by PG_PROC_QUERY."""
        cat = cls()
        for row in rows:
            proname, nspname, _args, provolatile = row
            vol = provolatile if provolatile in cls._RANK else "v"   # unknown value: worst case
            cat._add(str(proname).lower(), str(nspname).lower(), vol)
        return cat

    def _add(self, name: str, schema: str, vol: str) -> None:
        rank = self._RANK
        key = (schema, name)
        old = self._by_qualified.get(key)
        if old is None or rank[vol] > rank[old]:
            self._by_qualified[key] = vol
        old = self._by_name.get(name)
        if old is None or rank[vol] > rank[old]:
            self._by_name[name] = vol
        if vol == "v" and schema not in _SYSTEM_SCHEMAS:
            self._user_volatile.add(name)

    def volatility(self, name: str, schema: str | None = None) -> str | None:
        name = name.lower()
        if schema is None:
            return self._by_name.get(name)
        return self._by_qualified.get((schema.lower(), name))

    def shadowed_by_volatile(self, name: str) -> bool:
        return name.lower() in self._user_volatile

    def shadowing_names(self) -> frozenset[str]:
        """VOLATILE user-schema function names that are also built-ins on the allowlist."""
        return frozenset(n for n in self._user_volatile if n in PG_SAFE)

    def __len__(self) -> int:
        return len(self._by_qualified)


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------

class Judgement(NamedTuple):
    rule: str       # "unsafe_function" | "unknown_function"
    reason: str


class FunctionPolicy:
    """Judges one function call. `judge` returns None when the call is allowed."""

    __slots__ = ("dialect", "allow_unknown", "catalog", "_memo", "_unsafe", "_prefixes", "_safe")

    def __init__(self, dialect: str, allow_unknown: bool = False,
                 catalog: FunctionCatalog | None = None) -> None:
        if dialect not in _DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect = dialect
        self.allow_unknown = allow_unknown
        self.catalog = catalog
        self._unsafe, self._prefixes, self._safe = _DIALECTS[dialect]
        self._memo: dict[tuple[str | None, str], Judgement | None] = {}

    def judge(self, name: str, schema: str | None = None) -> Judgement | None:
        key = (schema, name)
        try:
            return self._memo[key]
        except KeyError:
            pass
        result = self._judge(name.lower(), schema.lower() if schema else None)
        if len(self._memo) < 4096:
            self._memo[key] = result
        return result

    def _display(self, name: str, schema: str | None) -> str:
        return f"{schema}.{name}" if schema else name

    def _judge(self, name: str, schema: str | None) -> Judgement | None:
        shown = self._display(name, schema)
        why = self._unsafe.get(name)
        if why is None:
            for prefix, pwhy in self._prefixes:
                if name.startswith(prefix):
                    why = pwhy
                    break
        if why is not None:       # the denylist wins over every allowance, any schema
            return Judgement("unsafe_function", reasons.unsafe_function(shown, why))

        # a call qualified with the system schema cannot be captured by a user function
        builtin_schema = schema is None or schema == _BUILTIN_SCHEMA.get(self.dialect)
        cat = self.catalog
        if builtin_schema and name in self._safe:
            if schema is None and cat is not None and cat.shadowed_by_volatile(name):
                detail = (f"a volatile user function named {name} exists on this server and "
                          f"could be called instead; write pg_catalog.{name}(...)")
                return self._unknown(shown, detail)
            return None
        if cat is not None:
            vol = cat.volatility(name, schema)
            if vol in ("i", "s"):
                return None
            if vol == "v":
                return self._unknown(shown, "it is VOLATILE on this server")
        return self._unknown(shown, "")

    def _unknown(self, shown: str, detail: str) -> Judgement | None:
        if self.allow_unknown:
            return None
        return Judgement("unknown_function", reasons.unknown_function(shown, detail))
