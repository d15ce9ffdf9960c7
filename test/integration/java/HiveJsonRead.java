// Reads NDJSON objects (gzip or plain) through a Hive SerDe, as Hive and Athena
// read a table's files: lines split by Hadoop's own LineReader (as
// TextInputFormat does: LF, CR and CRLF all end a line), each line deserialized
// by the SerDe initialized with the table's columns. Prints one JSON object per
// line read: {"file","line","row"} with the row as the SerDe's object inspector
// sees it, or {"file","line","error"} when the SerDe rejects the line.
//
//   java -cp '<jars>/*' HiveJsonRead.java SERDE_CLASS COLUMNS TYPES FILE...
//
// COLUMNS and TYPES as Hive's metastore hands them to a SerDe: names joined by
// ',', Hive type strings joined by ':' (the "columns" and "columns.types" table
// properties).
import java.io.BufferedOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.zip.GZIPInputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hive.serde2.AbstractSerDe;
import org.apache.hadoop.hive.serde2.objectinspector.ListObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.MapObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.StructField;
import org.apache.hadoop.hive.serde2.objectinspector.StructObjectInspector;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.util.LineReader;

public class HiveJsonRead {
  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: HiveJsonRead SERDE_CLASS COLUMNS TYPES FILE...");
      System.exit(2);
    }
    Properties table = new Properties();
    table.setProperty("columns", args[1]);
    table.setProperty("columns.types", args[2]);
    AbstractSerDe serde = (AbstractSerDe) Class.forName(args[0]).getDeclaredConstructor().newInstance();
    serde.initialize(new Configuration(false), table);
    StructObjectInspector inspector = (StructObjectInspector) serde.getObjectInspector();
    PrintStream out = new PrintStream(new BufferedOutputStream(System.out, 1 << 16), false, StandardCharsets.US_ASCII);
    for (int f = 3; f < args.length; f++) {
      String file = args[f];
      try (InputStream raw = new FileInputStream(file);
          InputStream in = file.endsWith(".gz") ? new GZIPInputStream(raw) : raw) {
        LineReader lines = new LineReader(in);
        Text line = new Text();
        for (int n = 1; lines.readLine(line) > 0; n++) {
          StringBuilder json = new StringBuilder("{\"file\":");
          quote(json, file).append(",\"line\":").append(n);
          try {
            Object row = serde.deserialize(line);
            write(json.append(",\"row\":"), row, inspector);
          } catch (Exception e) {
            quote(json.append(",\"error\":"), String.valueOf(e));
          }
          out.println(json.append('}'));
        }
      }
    }
    out.flush();
  }

  /** The value as JSON, walked through its inspector: field names and values as Hive sees them. */
  static void write(StringBuilder json, Object value, ObjectInspector oi) {
    if (value == null) {
      json.append("null");
      return;
    }
    switch (oi.getCategory()) {
      case PRIMITIVE: {
        Object v = ((PrimitiveObjectInspector) oi).getPrimitiveJavaObject(value);
        if (v instanceof Number || v instanceof Boolean) json.append(v);
        else quote(json, String.valueOf(v));
        return;
      }
      case STRUCT: {
        StructObjectInspector soi = (StructObjectInspector) oi;
        json.append('{');
        String sep = "";
        for (StructField field : soi.getAllStructFieldRefs()) {
          quote(json.append(sep), field.getFieldName()).append(':');
          write(json, soi.getStructFieldData(value, field), field.getFieldObjectInspector());
          sep = ",";
        }
        json.append('}');
        return;
      }
      case LIST: {
        ListObjectInspector loi = (ListObjectInspector) oi;
        json.append('[');
        List<?> items = loi.getList(value);
        for (int i = 0; i < items.size(); i++) {
          if (i > 0) json.append(',');
          write(json, items.get(i), loi.getListElementObjectInspector());
        }
        json.append(']');
        return;
      }
      case MAP: {
        MapObjectInspector moi = (MapObjectInspector) oi;
        json.append('{');
        String sep = "";
        for (Map.Entry<?, ?> e : moi.getMap(value).entrySet()) {
          quote(json.append(sep), String.valueOf(e.getKey())).append(':');
          write(json, e.getValue(), moi.getMapValueObjectInspector());
          sep = ",";
        }
        json.append('}');
        return;
      }
      default:
        throw new IllegalArgumentException("no JSON for a " + oi.getCategory() + " column");
    }
  }

  /** A JSON string in ASCII: every other UTF-16 unit as \\uXXXX, so the reader sees exactly Java's string. */
  static StringBuilder quote(StringBuilder json, String s) {
    json.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') json.append('\\').append(c);
      else if (c >= 0x20 && c < 0x7f) json.append(c);
      else json.append(String.format("\\u%04x", (int) c));
    }
    return json.append('"');
  }
}
