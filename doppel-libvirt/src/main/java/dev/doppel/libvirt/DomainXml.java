package dev.doppel.libvirt;

import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;
import org.xml.sax.SAXException;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import java.io.IOException;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;

/** Reads a {@link DomainDeviceModel} from libvirt's domain XML (the live XML of a running domain has the aliases). */
public final class DomainXml {
    private DomainXml() {
    }

    /**
     * The live device model of domain {@code name}.
     *
     * @throws LibvirtCallException if there is no such domain or its XML cannot be read
     */
    public static DomainDeviceModel read(LibvirtConnection connection, String name) {
        Domain d = connection.domain(name);
        String xml;
        try {
            xml = d.getXMLDesc(0);
        } catch (LibvirtException e) {
            throw new LibvirtCallException(connection.uri(), name, "reading the domain XML", e);
        }
        try {
            return parse(xml);
        } catch (IllegalArgumentException e) {
            throw new LibvirtCallException(connection.uri(), name, "reading the domain XML", e);
        }
    }

    /**
     * Parses domain XML.
     *
     * @throws IllegalArgumentException if it is not a libvirt domain description
     */
    public static DomainDeviceModel parse(String xml) {
        Element root = document(xml).getDocumentElement();
        if (!root.getTagName().equals("domain")) {
            throw new IllegalArgumentException("not a libvirt domain: root element <" + root.getTagName() + ">");
        }
        String name = text(child(root, "name"));
        Element devices = child(root, "devices");
        List<DomainDeviceModel.Disk> disks = new ArrayList<>();
        List<DomainDeviceModel.Nic> nics = new ArrayList<>();
        if (devices != null) {
            for (Element disk : children(devices, "disk")) {
                Element source = child(disk, "source");
                Element target = child(disk, "target");
                String index = attr(source, "index");
                disks.add(new DomainDeviceModel.Disk(attr(target, "dev"), attr(target, "bus"),
                        source == null ? null : firstNonNull(attr(source, "file"), attr(source, "dev")),
                        attr(child(disk, "driver"), "type"), attr(child(disk, "alias"), "name"),
                        index == null ? null : Integer.valueOf(index)));
            }
            for (Element nic : children(devices, "interface")) {
                nics.add(new DomainDeviceModel.Nic(nic.getAttribute("type"), attr(child(nic, "mac"), "address"),
                        attr(child(nic, "target"), "dev"), attr(child(nic, "model"), "type"), attr(child(nic, "alias"), "name")));
            }
        }
        Element os = child(root, "os");
        return new DomainDeviceModel(name, text(child(root, "uuid")), memoryKiB(child(root, "memory"), name),
                devices == null ? null : text(child(devices, "emulator")), attr(os == null ? null : child(os, "type"), "machine"),
                disks, nics);
    }

    private static long memoryKiB(Element memory, String name) {
        if (memory == null) {
            throw new IllegalArgumentException("domain '" + name + "' has no <memory>");
        }
        long value = Long.parseLong(text(memory));
        String unit = memory.getAttribute("unit");
        // libvirt's units (formatdomain "Memory Allocation"): k/KiB is the default, KB/MB/GB are powers of 1000.
        long bytesPerUnit = switch (unit.isEmpty() ? "KiB" : unit) {
            case "b", "bytes" -> 1L;
            case "k", "KiB" -> 1L << 10;
            case "KB" -> 1_000L;
            case "M", "MiB" -> 1L << 20;
            case "MB" -> 1_000_000L;
            case "G", "GiB" -> 1L << 30;
            case "GB" -> 1_000_000_000L;
            case "T", "TiB" -> 1L << 40;
            case "TB" -> 1_000_000_000_000L;
            default -> throw new IllegalArgumentException("domain '" + name + "': <memory unit='" + unit + "'> not understood");
        };
        return value * bytesPerUnit / 1024;
    }

    private static Document document(String xml) {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            // Domain XML never needs a DTD or external entities; refusing them keeps the parser from fetching anything.
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            f.setExpandEntityReferences(false);
            return f.newDocumentBuilder().parse(new InputSource(new StringReader(xml)));
        } catch (ParserConfigurationException | SAXException | IOException e) {
            throw new IllegalArgumentException("unreadable domain XML: " + e.getMessage(), e);
        }
    }

    private static Element child(Element parent, String tag) {
        if (parent == null) {
            return null;
        }
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && e.getTagName().equals(tag)) {
                return e;
            }
        }
        return null;
    }

    private static List<Element> children(Element parent, String tag) {
        List<Element> out = new ArrayList<>();
        NodeList list = parent.getChildNodes();
        for (int i = 0; i < list.getLength(); i++) {
            if (list.item(i) instanceof Element e && e.getTagName().equals(tag)) {
                out.add(e);
            }
        }
        return out;
    }

    private static String attr(Element e, String name) {
        return e == null || !e.hasAttribute(name) ? null : e.getAttribute(name);
    }

    private static String text(Element e) {
        return e == null ? null : e.getTextContent().trim();
    }

    private static String firstNonNull(String a, String b) {
        return a != null ? a : b;
    }
}
