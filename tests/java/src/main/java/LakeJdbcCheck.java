import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.LocalDate;
import java.util.Properties;

/**
 * Talks to `lake serve` through the Arrow Flight SQL JDBC driver the way JDBC tools (DBeaver,
 * Tableau) do, and prints what it sees as simple space-separated lines for
 * tests/python/test_flight_jdbc.py to compare with the lake:
 *
 * <pre>
 *   product NAME VERSION QUOTE              (DatabaseMetaData.getDatabaseProductName/Version,
 *                                           getIdentifierQuoteString: answered from GetSqlInfo)
 *   catalog NAME                            (DatabaseMetaData.getCatalogs)
 *   table_type TYPE                         (DatabaseMetaData.getTableTypes)
 *   table CATALOG SCHEMA NAME TYPE          (DatabaseMetaData.getTables)
 *   schema CATALOG SCHEMA                   (DatabaseMetaData.getSchemas)
 *   colmeta SCHEMA.TABLE COLUMN TYPE_NAME DATA_TYPE  (DatabaseMetaData.getColumns of raw.user_events)
 *   column NAME JDBC_TYPE_NAME              (executeQuery result set metadata)
 *   count EVENT_TYPE N                      (executeQuery ... GROUP BY event_type)
 *   prepared FORM METHOD DATE TOTAL_EVENTS  (PreparedStatement on processed.daily_metrics with a
 *                                           date bound by METHOD setDate/setObject; FORM is the
 *                                           placeholder style, qmark `?` or dollar `$1`; a line a row)
 *   prepared_rows FORM METHOD DATE N        (rows that execution returned for DATE)
 *   wide ROWS CHARS                         (executeQuery of a result sent as Flight messages of
 *                                           several MiB: its rows and the characters of `wide`)
 *   auth_error MESSAGE                      (connecting with a wrong password)
 *   error STEP MESSAGE                      (a step that failed; the run goes on and exits 1)
 *   done
 * </pre>
 *
 * Usage: java LakeJdbcCheck HOST PORT USER PASSWORD DATE EMPTY_DATE
 * (DATE has a daily_metrics row, EMPTY_DATE has none).
 */
public class LakeJdbcCheck {
    private static boolean failed = false;

    interface Step {
        void run() throws Exception;
    }

    static void step(String name, Step body) {
        try {
            body.run();
        } catch (Throwable e) {
            failed = true;
            System.out.println("error " + name + " " + oneLine(e));
            e.printStackTrace(System.err);
        }
    }

    static String oneLine(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (sb.length() > 0) sb.append(" | caused by: ");
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
            if (t.getCause() == t) break;
        }
        return sb.toString().replace('\n', ' ').replace('\r', ' ');
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: LakeJdbcCheck HOST PORT USER PASSWORD DATE EMPTY_DATE");
            System.exit(2);
        }
        String base = "jdbc:arrow-flight-sql://" + args[0] + ":" + args[1] + "/?useEncryption=false";
        String user = args[2];
        String password = args[3];
        LocalDate date = LocalDate.parse(args[4]);
        LocalDate emptyDate = LocalDate.parse(args[5]);

        step("connect_wrong_password", () -> {
            Properties p = new Properties();
            p.setProperty("user", user);
            p.setProperty("password", password + "-wrong");
            try (Connection c = DriverManager.getConnection(base, p)) {
                // The driver logs in when it connects; run a query in case it is lazy.
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
                    rs.next();
                }
                System.out.println("auth_ok_with_wrong_password");
            } catch (SQLException e) {
                System.out.println("auth_error " + oneLine(e));
            }
        });

        String url = base + "&user=" + user + "&password=" + password;
        // Any failure is printed; exit explicitly, since the driver's gRPC threads can keep the
        // JVM alive after an exception.
        step("connection", () -> checks(url, date, emptyDate));
        System.out.println("done");
        System.out.flush();
        Runtime.getRuntime().halt(failed ? 1 : 0);
    }

    static void checks(String url, LocalDate date, LocalDate emptyDate) throws Exception {
        try (Connection c = DriverManager.getConnection(url)) {
            DatabaseMetaData md = c.getMetaData();
            step("getDatabaseProduct", () -> System.out.println("product " + md.getDatabaseProductName() + " "
                    + md.getDatabaseProductVersion() + " " + md.getIdentifierQuoteString()));
            step("getCatalogs", () -> {
                try (ResultSet rs = md.getCatalogs()) {
                    while (rs.next()) System.out.println("catalog " + rs.getString("TABLE_CAT"));
                }
            });
            step("getTableTypes", () -> {
                try (ResultSet rs = md.getTableTypes()) {
                    while (rs.next()) System.out.println("table_type " + rs.getString("TABLE_TYPE"));
                }
            });
            step("getTables", () -> {
                try (ResultSet rs = md.getTables(null, null, "%", null)) {
                    while (rs.next()) {
                        System.out.println("table " + rs.getString("TABLE_CAT") + " " + rs.getString("TABLE_SCHEM")
                                + " " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
                    }
                }
            });
            step("getSchemas", () -> {
                try (ResultSet rs = md.getSchemas()) {
                    while (rs.next()) {
                        System.out.println("schema " + rs.getString("TABLE_CATALOG") + " " + rs.getString("TABLE_SCHEM"));
                    }
                }
            });
            step("getColumns", () -> {
                try (ResultSet rs = md.getColumns(null, "raw", "user_events", "%")) {
                    while (rs.next()) {
                        System.out.println("colmeta " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME")
                                + " " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                                + " " + rs.getInt("DATA_TYPE"));
                    }
                }
            });
            step("executeQuery", () -> {
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery(
                             "SELECT event_type, count(*) AS n FROM raw.user_events GROUP BY event_type ORDER BY event_type")) {
                    ResultSetMetaData rmd = rs.getMetaData();
                    for (int i = 1; i <= rmd.getColumnCount(); i++) {
                        System.out.println("column " + rmd.getColumnName(i) + " " + rmd.getColumnTypeName(i));
                    }
                    while (rs.next()) {
                        System.out.println("count " + rs.getString(1) + " " + rs.getLong(2));
                    }
                }
            });
            step("wide", () -> {
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery(
                             "SELECT kafka_offset, repeat(session_id, 1000) AS wide FROM raw.user_events")) {
                    long rows = 0, chars = 0;
                    while (rs.next()) {
                        rows++;
                        chars += rs.getString(2).length();
                    }
                    System.out.println("wide " + rows + " " + chars);
                }
            });
            // JDBC tools write `?`; DataFusion's own placeholders are `$1`. Both are tried.
            String[][] variants = {
                {"qmark", "SELECT date, total_events FROM processed.daily_metrics WHERE date = ?"},
                {"dollar", "SELECT date, total_events FROM processed.daily_metrics WHERE date = $1"},
            };
            for (String[] v : variants) {
                String label = v[0];
                step("prepareStatement_" + label, () -> {
                    try (PreparedStatement ps = c.prepareStatement(v[1])) {
                        // One statement executed with several values, as tools do.
                        step("setDate_" + label, () -> printPrepared(ps, label, "setDate", date,
                                () -> ps.setDate(1, Date.valueOf(date))));
                        step("setObject_" + label, () -> printPrepared(ps, label, "setObject", date,
                                () -> ps.setObject(1, Date.valueOf(date))));
                        step("setDate_empty_" + label, () -> printPrepared(ps, label, "setDate", emptyDate,
                                () -> ps.setDate(1, Date.valueOf(emptyDate))));
                    }
                });
            }
        }
    }

    static void printPrepared(PreparedStatement ps, String label, String method, LocalDate date, Step bind)
            throws Exception {
        bind.run();
        int rows = 0;
        try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                rows++;
                System.out.println("prepared " + label + " " + method + " " + rs.getDate(1).toLocalDate() + " " + rs.getLong(2));
            }
        }
        System.out.println("prepared_rows " + label + " " + method + " " + date + " " + rows);
    }
}
