// Packet-level TCP reference for hsgd-testbed's network clock (bench/netval).
//
// Reads one scenario in the flat text format written by ns3run.py (a tree of
// full-duplex point-to-point links and a DAG of transfers), simulates it with
// ns-3's TCP (CUBIC), and prints one line per transfer on stdout:
//
//     <id> <start_s> <end_s>
//
// start_s = when the sender handed its first byte to TCP, end_s = when the
// receiver got the last byte, both relative to the data phase start T0; "nan"
// for a transfer that never started or never finished.
//
// Usage:  ns3_dag SCENARIO.txt [STATS.txt]    simulate; per-transfer/per-link
//                                             diagnostics go to STATS.txt
//         ns3_dag --dump-config SCENARIO.txt  print the effective ns-3 attribute
//                                             values ("Type::Attr = value") after
//                                             the scenario's settings are applied
//
// Input lines (whitespace separated, '#' starts a comment line):
//     param NAME VALUE                  see ApplyParams() for the names; "param trace 1"
//                                       logs cwnd, ssthresh, congestion states,
//                                       retransmissions and queue drops to stderr
//     nodes N                           nodes are 0..N-1
//     link CHILD PARENT UP_BPS DOWN_BPS DELAY_NS QUP_PKTS QDOWN_PKTS
//     xfer ID SRC DST BYTES START_S NAFTER [AFTER_ID ...]
// Links must form a tree (routing is ns-3 global routing, unambiguous on a tree).
// A transfer with NAFTER > 0 starts when the last of its AFTER transfers has been
// fully received (same simulation time), and not before T0 + START_S.

#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace ns3;

namespace
{

struct Link
{
    uint32_t child = 0, parent = 0;
    uint64_t upBps = 0, downBps = 0;
    int64_t delayNs = 0;
    uint32_t qUp = 0, qDown = 0;
    Ptr<QueueDisc> qdUp, qdDown;           // child device (sends up), parent device (sends down)
    Ptr<NetDevice> devChild, devParent;
    Ipv4Address addrChild, addrParent;
};

struct Xfer
{
    int64_t id = 0; // the scenario's transfer id (echoed on output)
    uint32_t src = 0, dst = 0;
    uint64_t bytes = 0;
    double startS = 0.0;
    std::vector<uint32_t> after;      // indices into g_x
    std::vector<uint32_t> dependents; // indices into g_x
    uint32_t pending = 0;             // unfinished prerequisites
    uint16_t port = 0;
    Ptr<Socket> tx, listener, rx;
    uint64_t sent = 0, received = 0;
    double tStart = NAN, tEnd = NAN; // absolute simulation seconds
    bool connected = false, accepted = false, started = false, timeGate = false;
    uint64_t retxSegments = 0;
    uint32_t recoveries = 0, rtos = 0;
    uint64_t segmentsSent = 0;
};

std::map<std::string, std::string> g_param;
std::vector<Link> g_links;
std::vector<Xfer> g_x;
uint32_t g_nNodes = 0;
uint32_t g_done = 0;
double g_t0 = 2.0;

double
P(const std::string& k, double dflt)
{
    auto it = g_param.find(k);
    return it == g_param.end() ? dflt : std::stod(it->second);
}

std::string
DeviceQueue()
{
    auto it = g_param.find("device_queue");
    return it == g_param.end() ? "1p" : it->second;
}

void
Die(const std::string& msg)
{
    std::cerr << "ns3_dag: " << msg << std::endl;
    std::exit(2);
}

void
ReadScenario(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
    {
        Die("cannot read " + path);
    }
    std::string line;
    std::map<int64_t, uint32_t> index;
    std::vector<std::vector<int64_t>> afterIds;
    int lineNo = 0;
    while (std::getline(in, line))
    {
        ++lineNo;
        std::istringstream ss(line);
        std::string kw;
        if (!(ss >> kw) || kw[0] == '#')
        {
            continue;
        }
        if (kw == "param")
        {
            std::string k, v;
            ss >> k >> v;
            g_param[k] = v;
        }
        else if (kw == "nodes")
        {
            ss >> g_nNodes;
        }
        else if (kw == "link")
        {
            Link l;
            ss >> l.child >> l.parent >> l.upBps >> l.downBps >> l.delayNs >> l.qUp >> l.qDown;
            if (!ss || l.child >= g_nNodes || l.parent >= g_nNodes || l.upBps == 0 || l.downBps == 0)
            {
                Die(path + ":" + std::to_string(lineNo) + ": bad link line");
            }
            g_links.push_back(l);
        }
        else if (kw == "xfer")
        {
            Xfer x;
            uint32_t nAfter = 0;
            ss >> x.id >> x.src >> x.dst >> x.bytes >> x.startS >> nAfter;
            std::vector<int64_t> a(nAfter);
            for (auto& v : a)
            {
                ss >> v;
            }
            if (!ss || x.src >= g_nNodes || x.dst >= g_nNodes || x.src == x.dst || x.bytes == 0)
            {
                Die(path + ":" + std::to_string(lineNo) + ": bad xfer line");
            }
            if (index.count(x.id))
            {
                Die("duplicate transfer id " + std::to_string(x.id));
            }
            index[x.id] = g_x.size();
            g_x.push_back(x);
            afterIds.push_back(a);
        }
        else
        {
            Die(path + ":" + std::to_string(lineNo) + ": unknown keyword " + kw);
        }
    }
    if (g_links.size() + 1 != g_nNodes)
    {
        Die("links must form a tree: " + std::to_string(g_nNodes) + " nodes, " +
            std::to_string(g_links.size()) + " links");
    }
    for (uint32_t i = 0; i < g_x.size(); ++i)
    {
        for (auto id : afterIds[i])
        {
            auto it = index.find(id);
            if (it == index.end())
            {
                Die("transfer " + std::to_string(g_x[i].id) + " waits for unknown transfer " +
                    std::to_string(id));
            }
            g_x[i].after.push_back(it->second);
            g_x[it->second].dependents.push_back(i);
        }
        g_x[i].pending = g_x[i].after.size();
    }
}

void
ApplyParams()
{
    g_t0 = P("t0_s", 2.0);
    Config::SetDefault("ns3::TcpL4Protocol::SocketType", TypeIdValue(TcpCubic::GetTypeId()));
    Config::SetDefault("ns3::TcpCubic::HyStart", BooleanValue(P("hystart", 1) != 0));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(P("mss", 1448)));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(P("initial_cwnd_segments", 10)));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(P("snd_buf_bytes", 4194304)));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(P("rcv_buf_bytes", 4194304)));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(P("del_ack_count", 2)));
    Config::SetDefault("ns3::TcpSocket::DelAckTimeout",
                       TimeValue(MicroSeconds(std::llround(P("del_ack_timeout_ms", 40) * 1000))));
    Config::SetDefault("ns3::TcpSocketBase::MinRto",
                       TimeValue(MicroSeconds(std::llround(P("min_rto_ms", 200) * 1000))));
    Config::SetDefault("ns3::TcpSocketBase::Timestamp", BooleanValue(P("timestamps", 1) != 0));
    Config::SetDefault("ns3::TcpSocketBase::Sack", BooleanValue(P("sack", 1) != 0));
    Config::SetDefault("ns3::TcpSocketBase::WindowScaling", BooleanValue(true));
    // pfifo_fast would otherwise be installed by Ipv4AddressHelper::Assign; every device
    // gets an explicit FifoQueueDisc instead (see BuildNetwork), and the device's own
    // queue is cut to a small fixed size so that it adds almost nothing to the buffer.
}

// ---- the data phase -----------------------------------------------------------------

void CheckAllDone();

void
Pump(uint32_t i)
{
    Xfer& x = g_x[i];
    while (x.sent < x.bytes)
    {
        uint32_t avail = x.tx->GetTxAvailable();
        if (avail == 0)
        {
            return;
        }
        uint64_t chunk = std::min<uint64_t>(x.bytes - x.sent, avail);
        int r = x.tx->Send(Create<Packet>(static_cast<uint32_t>(chunk)));
        if (r <= 0)
        {
            return; // buffer full after all; SendCallback will call again
        }
        x.sent += r;
    }
}

void
OnSendSpace(uint32_t i, Ptr<Socket>, uint32_t)
{
    if (g_x[i].started)
    {
        Pump(i);
    }
}

void
StartXfer(uint32_t i)
{
    Xfer& x = g_x[i];
    if (x.started)
    {
        return;
    }
    if (!x.connected)
    {
        Die("transfer " + std::to_string(x.id) + " starts but its connection is not established");
    }
    x.started = true;
    x.tStart = Simulator::Now().GetSeconds();
    Pump(i);
}

void
MaybeStart(uint32_t i)
{
    if (g_x[i].pending == 0 && g_x[i].timeGate)
    {
        StartXfer(i);
    }
}

void
TimeGate(uint32_t i)
{
    g_x[i].timeGate = true;
    MaybeStart(i);
}

void
OnRecv(uint32_t i, Ptr<Socket> s)
{
    Xfer& x = g_x[i];
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        if (p->GetSize() == 0)
        {
            break;
        }
        x.received += p->GetSize();
    }
    if (x.received >= x.bytes && std::isnan(x.tEnd))
    {
        x.tEnd = Simulator::Now().GetSeconds();
        if (x.received > x.bytes)
        {
            Die("transfer " + std::to_string(x.id) + " received more bytes than sent");
        }
        for (uint32_t d : x.dependents)
        {
            if (--g_x[d].pending == 0)
            {
                Simulator::ScheduleNow(&MaybeStart, d); // same simulation time
            }
        }
        ++g_done;
        CheckAllDone();
    }
}

void
OnAccept(uint32_t i, Ptr<Socket> s, const Address&)
{
    Xfer& x = g_x[i];
    if (x.accepted)
    {
        Die("second connection on the port of transfer " + std::to_string(x.id));
    }
    x.accepted = true;
    x.rx = s;
    s->SetRecvCallback(MakeBoundCallback(&OnRecv, i));
}

void
OnConnected(uint32_t i, Ptr<Socket>)
{
    g_x[i].connected = true;
}

void
OnConnectFailed(uint32_t i, Ptr<Socket>)
{
    Die("connection of transfer " + std::to_string(g_x[i].id) + " failed");
}

void
OnCongState(uint32_t i, TcpSocketState::TcpCongState_t, TcpSocketState::TcpCongState_t now)
{
    if (P("trace", 0) != 0)
    {
        std::cerr << "t=" << Simulator::Now().GetSeconds() - g_t0 << " xfer " << g_x[i].id << " congstate "
                  << TcpSocketState::TcpCongStateName[now] << "\n";
    }
    if (now == TcpSocketState::CA_LOSS)
    {
        ++g_x[i].rtos;
    }
    else if (now == TcpSocketState::CA_RECOVERY)
    {
        ++g_x[i].recoveries;
    }
}

void
OnSsThresh(uint32_t i, uint32_t, uint32_t now)
{
    std::cerr << "t=" << Simulator::Now().GetSeconds() - g_t0 << " xfer " << g_x[i].id << " ssthresh "
              << now / 1448.0 << " seg\n";
}

void
OnCwnd(uint32_t i, uint32_t old, uint32_t now)
{
    if (now / 1448 / 50 != old / 1448 / 50 || now < old)
    {
        std::cerr << "t=" << Simulator::Now().GetSeconds() - g_t0 << " xfer " << g_x[i].id << " cwnd "
                  << now / 1448.0 << " seg\n";
    }
}

void
OnRetransmission(uint32_t i,
                  Ptr<const Packet>,
                  const TcpHeader& h,
                  const Address&,
                  const Address&,
                  Ptr<const TcpSocketBase>)
{
    ++g_x[i].retxSegments;
    if (P("trace", 0) != 0)
    {
        std::cerr << "t=" << Simulator::Now().GetSeconds() - g_t0 << " xfer " << g_x[i].id << " retx seg "
                  << (h.GetSequenceNumber().GetValue() - 1) / 1448 << "\n";
    }
}

void
OnTx(uint32_t i, Ptr<const Packet> p, const TcpHeader&, Ptr<const TcpSocketBase>)
{
    if (p->GetSize() > 0)
    {
        ++g_x[i].segmentsSent;
    }
}

void
CheckAllDone()
{
    if (g_done == g_x.size())
    {
        Simulator::Stop();
    }
}

// ---- building the network -----------------------------------------------------------

std::vector<int64_t> g_parentLink; // per node: index of the link to its parent, -1 at the root
std::vector<uint32_t> g_parentNode;

Ipv4Address
AddressFacing(uint32_t src, uint32_t dst)
{
    // dst's address on the first link of the path that enters dst: the child link
    // toward src when dst is an ancestor of src, else dst's own parent link.
    uint32_t n = src;
    while (g_parentLink[n] >= 0)
    {
        uint32_t p = g_parentNode[n];
        if (p == dst)
        {
            return g_links[g_parentLink[n]].addrParent;
        }
        n = p;
    }
    if (g_parentLink[dst] < 0)
    {
        Die("cannot route: node " + std::to_string(dst) + " is the root but not an ancestor of " +
            std::to_string(src));
    }
    return g_links[g_parentLink[dst]].addrChild;
}

void
OnDrop(uint32_t k, Ptr<const QueueDiscItem> item)
{
    Ptr<Packet> p = item->GetPacket()->Copy();
    TcpHeader h;
    p->RemoveHeader(h);
    std::cerr << "t=" << Simulator::Now().GetSeconds() - g_t0 << " link " << k << " drop seg "
              << (h.GetSequenceNumber().GetValue() - 1) / 1448 << "\n";
}

NodeContainer
BuildNetwork()
{
    NodeContainer nodes;
    nodes.Create(g_nNodes);
    InternetStackHelper stack;
    stack.Install(nodes);

    g_parentLink.assign(g_nNodes, -1);
    g_parentNode.assign(g_nNodes, 0);
    PointToPointHelper p2p;
    // Device queue: 1 packet. The FifoQueueDisc above it holds the real buffer; the
    // device stops/wakes the queue disc (flow control), so a direction buffers at most
    // QUEUE_PKTS (queue disc) + 1 (device queue) packets plus the one on the wire.
    p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", StringValue(DeviceQueue()));
    Ipv4AddressHelper addr;
    addr.SetBase("10.0.0.0", "255.255.255.252");
    for (uint32_t k = 0; k < g_links.size(); ++k)
    {
        Link& l = g_links[k];
        if (g_parentLink[l.child] >= 0)
        {
            Die("node " + std::to_string(l.child) + " has two parents");
        }
        g_parentLink[l.child] = k;
        g_parentNode[l.child] = l.parent;
        p2p.SetChannelAttribute("Delay", TimeValue(NanoSeconds(l.delayNs)));
        NetDeviceContainer devs = p2p.Install(nodes.Get(l.child), nodes.Get(l.parent));
        l.devChild = devs.Get(0);
        l.devParent = devs.Get(1);
        DynamicCast<PointToPointNetDevice>(l.devChild)->SetDataRate(DataRate(l.upBps));
        DynamicCast<PointToPointNetDevice>(l.devParent)->SetDataRate(DataRate(l.downBps));
        // explicit queue discs BEFORE Assign, so that no pfifo_fast (1000p) is installed
        TrafficControlHelper up, down;
        up.SetRootQueueDisc("ns3::FifoQueueDisc",
                            "MaxSize",
                            QueueSizeValue(QueueSize(QueueSizeUnit::PACKETS, l.qUp)));
        down.SetRootQueueDisc("ns3::FifoQueueDisc",
                              "MaxSize",
                              QueueSizeValue(QueueSize(QueueSizeUnit::PACKETS, l.qDown)));
        l.qdUp = up.Install(l.devChild).Get(0);
        l.qdDown = down.Install(l.devParent).Get(0);
        if (P("trace", 0) != 0)
        {
            l.qdUp->TraceConnectWithoutContext("Drop", MakeBoundCallback(&OnDrop, k));
            l.qdDown->TraceConnectWithoutContext("Drop", MakeBoundCallback(&OnDrop, k));
        }
        Ipv4InterfaceContainer ifs = addr.Assign(devs);
        l.addrChild = ifs.GetAddress(0);
        l.addrParent = ifs.GetAddress(1);
        addr.NewNetwork();
    }
    for (uint32_t n = 0; n < g_nNodes; ++n)
    {
        uint32_t hops = 0;
        for (uint32_t m = n; g_parentLink[m] >= 0; m = g_parentNode[m])
        {
            if (++hops > g_nNodes)
            {
                Die("links contain a cycle");
            }
        }
    }
    uint32_t roots = 0;
    for (uint32_t n = 0; n < g_nNodes; ++n)
    {
        roots += g_parentLink[n] < 0;
    }
    if (roots != 1)
    {
        Die("links must form one tree");
    }
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();
    return nodes;
}

void
SetUpConnections(NodeContainer& nodes)
{
    double connectAt = P("connect_at_s", 0.5);
    double spacing = P("connect_spacing_s", 0.0001);
    if (connectAt + spacing * g_x.size() >= g_t0)
    {
        Die("connections would not all be opened before T0");
    }
    for (uint32_t i = 0; i < g_x.size(); ++i)
    {
        Xfer& x = g_x[i];
        x.port = static_cast<uint16_t>(10000 + i);
        if (10000 + i > 65000)
        {
            Die("too many transfers for one port range");
        }
        x.listener = Socket::CreateSocket(nodes.Get(x.dst), TcpSocketFactory::GetTypeId());
        x.listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), x.port));
        x.listener->Listen();
        x.listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                      MakeBoundCallback(&OnAccept, i));

        x.tx = Socket::CreateSocket(nodes.Get(x.src), TcpSocketFactory::GetTypeId());
        x.tx->TraceConnectWithoutContext("CongState", MakeBoundCallback(&OnCongState, i));
        x.tx->TraceConnectWithoutContext("Tx", MakeBoundCallback(&OnTx, i));
        if (P("trace", 0) != 0)
        {
            x.tx->TraceConnectWithoutContext("SlowStartThreshold", MakeBoundCallback(&OnSsThresh, i));
            x.tx->TraceConnectWithoutContext("CongestionWindow", MakeBoundCallback(&OnCwnd, i));
        }
        if (!x.tx->TraceConnectWithoutContext("Retransmission", MakeBoundCallback(&OnRetransmission, i)))
        {
            Die("no Retransmission trace source on TcpSocketBase");
        }
        x.tx->SetConnectCallback(MakeBoundCallback(&OnConnected, i), MakeBoundCallback(&OnConnectFailed, i));
        x.tx->SetSendCallback(MakeBoundCallback(&OnSendSpace, i));
        Ipv4Address to = AddressFacing(x.src, x.dst);
        Simulator::Schedule(Seconds(connectAt + spacing * i), [to, i]() {
            g_x[i].tx->Bind();
            g_x[i].tx->Connect(InetSocketAddress(to, g_x[i].port));
        });
        Simulator::Schedule(Seconds(g_t0 + x.startS), &TimeGate, i);
    }
}

// ---- effective configuration --------------------------------------------------------

void
DumpObject(Ptr<Object> o, std::ostream& os)
{
    for (TypeId tid = o->GetInstanceTypeId();; tid = tid.GetParent())
    {
        for (std::size_t k = 0; k < tid.GetAttributeN(); ++k)
        {
            TypeId::AttributeInformation info = tid.GetAttribute(k);
            if (!(info.flags & TypeId::ATTR_GET) || !info.accessor->HasGetter())
            {
                continue;
            }
            std::string vt = info.checker->GetValueTypeName();
            if (vt.find("Pointer") != std::string::npos || vt.find("ObjectPtrContainer") != std::string::npos ||
                vt.find("Callback") != std::string::npos)
            {
                continue;
            }
            StringValue v;
            if (o->GetAttributeFailSafe(info.name, v))
            {
                os << tid.GetName() << "::" << info.name << " = " << v.Get() << "\n";
            }
        }
        if (tid.GetParent() == tid || tid.GetName() == "ns3::Object")
        {
            break;
        }
    }
}

void
DumpConfig()
{
    NodeContainer n;
    n.Create(2);
    InternetStackHelper stack;
    stack.Install(n);
    PointToPointHelper p2p;
    p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", StringValue(DeviceQueue()));
    NetDeviceContainer d = p2p.Install(n);
    std::cout << "# effective ns-3 attribute values after the scenario's settings\n";
    DumpObject(n.Get(0)->GetObject<TcpL4Protocol>(), std::cout);
    Ptr<Socket> s = Socket::CreateSocket(n.Get(0), TcpSocketFactory::GetTypeId());
    DumpObject(s, std::cout);
    DumpObject(CreateObject<TcpCubic>(), std::cout);
    DumpObject(CreateObject<TcpSocketState>(), std::cout);
    DumpObject(CreateObject<FifoQueueDisc>(), std::cout);
    DumpObject(d.Get(0), std::cout);
    DumpObject(DynamicCast<PointToPointNetDevice>(d.Get(0))->GetQueue(), std::cout);
}

} // namespace

int
main(int argc, char* argv[])
{
    bool dump = argc >= 2 && std::string(argv[1]) == "--dump-config";
    int first = dump ? 2 : 1;
    if (argc < first + 1)
    {
        std::cerr << "usage: ns3_dag SCENARIO.txt [STATS.txt] | ns3_dag --dump-config SCENARIO.txt\n";
        return 2;
    }
    ReadScenario(argv[first]);
    ApplyParams();
    if (dump)
    {
        DumpConfig();
        return 0;
    }
    NodeContainer nodes = BuildNetwork();
    SetUpConnections(nodes);
    double limit = P("limit_s", 3600.0);
    Simulator::Stop(Seconds(g_t0 + limit));
    Simulator::Schedule(Seconds(g_t0), []() {
        for (auto& x : g_x)
        {
            if (!x.connected || !x.accepted)
            {
                Die("transfer " + std::to_string(x.id) + ": connection not established by T0");
            }
        }
    });
    Simulator::Run();
    double simEnd = Simulator::Now().GetSeconds();

    auto rel = [](double t) {
        if (std::isnan(t))
        {
            return std::string("nan");
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.9f", t - g_t0);
        return std::string(buf);
    };
    for (auto& x : g_x)
    {
        std::cout << x.id << " " << rel(x.tStart) << " " << rel(x.tEnd) << "\n";
    }
    std::cout.flush();

    if (argc >= first + 2)
    {
        std::ofstream st(argv[first + 1]);
        st << "sim_end_s " << std::fixed << std::setprecision(9) << (simEnd - g_t0) << "\n";
        for (auto& x : g_x)
        {
            st << "xfer " << x.id << " received " << x.received << " segments " << x.segmentsSent
               << " retx " << x.retxSegments << " recoveries " << x.recoveries << " rtos " << x.rtos << "\n";
        }
        for (uint32_t k = 0; k < g_links.size(); ++k)
        {
            Link& l = g_links[k];
            const QueueDisc::Stats& su = l.qdUp->GetStats();
            const QueueDisc::Stats& sd = l.qdDown->GetStats();
            auto qUp = DynamicCast<PointToPointNetDevice>(l.devChild)->GetQueue();
            auto qDn = DynamicCast<PointToPointNetDevice>(l.devParent)->GetQueue();
            st << "link " << k << " up_drops " << su.nTotalDroppedPackets << " down_drops "
               << sd.nTotalDroppedPackets << " up_dev_drops " << qUp->GetTotalDroppedPackets()
               << " down_dev_drops " << qDn->GetTotalDroppedPackets() << " up_pkts " << su.nTotalSentPackets
               << " down_pkts " << sd.nTotalSentPackets << "\n";
        }
    }
    Simulator::Destroy();
    return 0;
}
