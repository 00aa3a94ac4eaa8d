package dev.doppel.libvirt.remus;

import java.io.StringReader;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;

/**
 * The primary's domain definition made into the backup host's restore destination. What changes, and why:
 * <ul>
 *   <li>each disk with an image runs on the backup's replica of it (raw), the i-th disk on the i-th replicated
 *       node: the primary described its disks in XML order;</li>
 *   <li>a bridge or network NIC loses its tap name ({@code <target dev>}): the tap is a host's own device, and the
 *       primary's may still exist while its libvirtd cleans up; this host's libvirt names one. MAC, model and
 *       bridge stay (the guest's address moves with its MAC);</li>
 *   <li>QEMU waits for the checkpoint ({@code -incoming defer} in {@code <qemu:commandline>}, replacing one a domain
 *       that failed over before still has); the domain is started paused and resumed once the checkpoint is loaded.</li>
 * </ul>
 * Name, UUID, memory, machine type, emulator and every other device stay the primary's: the checkpoint's device
 * state must find the identical device model. Other host paths (console log, kernel) must exist on this host, as
 * libvirt's own migration assumes, or be mapped by the caller before.
 */
final class DestinationXml {
    static final String QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0";

    private DestinationXml() {
    }

    /**
     * @param definition the primary's inactive domain XML
     * @param replicas   the backup's disk images, in the order of the primary's disks with an image
     */
    static String of(String definition, List<Path> replicas) {
        Document doc = parse(definition);
        Element root = doc.getDocumentElement();
        Element devices = child(root, "devices");
        if (devices == null) {
            throw new IllegalArgumentException("domain XML without <devices>");
        }
        List<Element> imageDisks = new ArrayList<>();
        for (Element disk : children(devices, "disk")) {
            Element source = child(disk, "source");
            if (source != null && (source.hasAttribute("file") || source.hasAttribute("dev"))) {
                imageDisks.add(disk);
            }
        }
        if (imageDisks.size() != replicas.size()) {
            throw new IllegalArgumentException("the domain has " + imageDisks.size() + " disks with an image, the backup "
                    + replicas.size() + " replicas: every disk must be replicated to restore the domain");
        }
        for (int i = 0; i < imageDisks.size(); i++) {
            Element disk = imageDisks.get(i);
            disk.setAttribute("type", "file");
            Element source = child(disk, "source");
            source.removeAttribute("dev");
            source.setAttribute("file", replicas.get(i).toString());
            Element driver = child(disk, "driver");
            if (driver == null) {
                driver = doc.createElement("driver");
                driver.setAttribute("name", "qemu");
                disk.insertBefore(driver, disk.getFirstChild());
            }
            driver.setAttribute("type", "raw");
            Element backingStore = child(disk, "backingStore");
            if (backingStore != null) {
                disk.removeChild(backingStore);   // the replica is a flat image of the whole chain
            }
        }
        for (Element nic : children(devices, "interface")) {
            String type = nic.getAttribute("type");
            Element target = child(nic, "target");
            if (target != null && (type.equals("bridge") || type.equals("network"))) {
                nic.removeChild(target);
            }
        }
        if (!root.hasAttribute("xmlns:qemu")) {
            root.setAttributeNS(XMLConstants.XMLNS_ATTRIBUTE_NS_URI, "xmlns:qemu", QEMU_NS);
        }
        Element cmdline = null;
        NodeList found = root.getElementsByTagNameNS(QEMU_NS, "commandline");
        if (found.getLength() > 0) {
            cmdline = (Element) found.item(0);
        } else {
            cmdline = doc.createElementNS(QEMU_NS, "qemu:commandline");
            root.appendChild(cmdline);
        }
        removeIncoming(cmdline);
        for (String arg : List.of("-incoming", "defer")) {
            Element a = doc.createElementNS(QEMU_NS, "qemu:arg");
            a.setAttribute("value", arg);
            cmdline.appendChild(a);
        }
        return serialize(doc);
    }

    /**
     * A domain that failed over before was started with {@code -incoming defer} and keeps it in its definition;
     * QEMU takes one {@code -incoming}: the old pair goes.
     */
    private static void removeIncoming(Element cmdline) {
        List<Element> args = new ArrayList<>();
        for (Node n = cmdline.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && "arg".equals(e.getLocalName()) && QEMU_NS.equals(e.getNamespaceURI())) {
                args.add(e);
            }
        }
        for (int i = 0; i + 1 < args.size(); i++) {
            if (args.get(i).getAttribute("value").equals("-incoming")) {
                cmdline.removeChild(args.get(i));
                cmdline.removeChild(args.get(i + 1));
                i++;
            }
        }
    }

    private static Document parse(String xml) {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setNamespaceAware(true);
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            return f.newDocumentBuilder().parse(new InputSource(new StringReader(xml)));
        } catch (Exception e) {
            throw new IllegalArgumentException("not well-formed domain XML: " + e.getMessage(), e);
        }
    }

    private static String serialize(Document doc) {
        try {
            var t = TransformerFactory.newInstance().newTransformer();
            t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
            StringWriter out = new StringWriter();
            t.transform(new DOMSource(doc), new StreamResult(out));
            return out.toString();
        } catch (Exception e) {
            throw new IllegalStateException("cannot write domain XML: " + e.getMessage(), e);
        }
    }

    private static Element child(Element parent, String tag) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && tag.equals(e.getLocalName() != null ? e.getLocalName() : e.getTagName())
                    && (e.getNamespaceURI() == null)) {
                return e;
            }
        }
        return null;
    }

    private static List<Element> children(Element parent, String tag) {
        List<Element> out = new ArrayList<>();
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && tag.equals(e.getLocalName() != null ? e.getLocalName() : e.getTagName())
                    && e.getNamespaceURI() == null) {
                out.add(e);
            }
        }
        return out;
    }
}
