"""Loads the demo data; idempotent: a second run finds everything in place and adds nothing.

Users, a two-level category tree, one banner and about 50 approved listings whose images are
drawn locally with Pillow (no network) and stored through Django's storage like real uploads.
"""

import io
import random
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from marketplace.actions.catalog import invalidate_catalog_cache
from marketplace.actions.uploads import THUMB_SIDE
from marketplace.category_icons import give_generated_icons
from marketplace.models import Banner, Category, ImageUpload, Listing, ListingStatus, User

DEMO_USERS = [
    {"openid": "demo-seller-0001", "nickname": "小林的闲置"},
    {"openid": "demo-buyer-0001", "nickname": "爱淘宝的阿杰"},
    {"openid": "demo-seller-0002", "nickname": "毕业清仓的小周"},
    {"openid": "demo-seller-0003", "nickname": "数码控老王"},
]

CATEGORIES = {
    "手机": ["苹果", "安卓", "配件"],
    "包包": ["双肩包", "手提包", "钱包"],
    "衣服": ["上衣", "裤子", "外套"],
    "鞋子": ["运动鞋", "皮鞋", "靴子"],
    "游戏": ["主机", "游戏卡带", "手柄"],
    "电脑": ["笔记本", "台式机", "平板"],
}

# Each demo item's condition, shipping and city follow from its place in the list: the choices
# and 同城 filter have something to show.
DEMO_CONDITIONS = ["like_new", "light_wear", "new", "heavy_wear"]
DEMO_CITIES = ["440300", "310100", "110100"]  # 深圳, 上海, 北京
DEMO_SHIPPING_FEN = [0, 1_000, 0, 800]  # 0 = 包邮

# (leaf, title, description, price in yuan)
ITEMS = [
    ("苹果", "iPhone 13 128G 午夜色", "自用一年，无磕碰，电池健康 89%，原装充电线。", 2799),
    ("苹果", "iPhone 12 mini 64G", "小屏党福音，屏幕完美，背板有细微划痕。", 1399),
    ("苹果", "iPhone 14 Pro 256G 暗紫", "国行在保，配件齐全，送手机壳。", 5699),
    ("苹果", "iPhone SE 第三代", "备用机，几乎没用过，95 新。", 1299),
    ("安卓", "小米 13 12+256", "徕卡影像，轻微使用痕迹，功能全好。", 2199),
    ("安卓", "华为 Mate 40 Pro", "曲面屏无划痕，鸿蒙系统，送原装快充。", 2399),
    ("安卓", "OPPO Find X5", "哈苏影像，用了半年，盒说全。", 1899),
    ("安卓", "一加 11 16+256", "游戏性能强，屏幕贴膜使用。", 2499),
    ("配件", "AirPods Pro 二代", "降噪正常，耳机仓有小划痕。", 899),
    ("配件", "Anker 65W 氮化镓充电器", "全新未拆封，多买了一个。", 129),
    ("配件", "Apple Watch S7 41mm", "运动表带，电池健康 92%。", 1499),
    ("双肩包", "Herschel 经典双肩包", "大容量，可放 15 寸电脑。", 199),
    ("双肩包", "北面 Borealis 背包", "通勤好物，九成新。", 359),
    ("手提包", "Coach 托特包 棕色", "专柜购入，有小票，边角轻微磨损。", 1299),
    ("手提包", "帆布托特包 原创设计", "全新，适合上课装书。", 59),
    ("钱包", "LV 短款钱包", "老花经典款，附购买凭证。", 2199),
    ("钱包", "无印良品 长钱包", "几乎全新，卡位多。", 79),
    ("上衣", "优衣库 U 系列 T 恤 L 码", "白色，只洗过一次。", 39),
    ("上衣", "Champion 卫衣 M 码", "灰色，保暖舒适。", 129),
    ("上衣", "格子衬衫 秋冬款", "纯棉，适合叠穿。", 69),
    ("裤子", "Levi's 501 牛仔裤 32 码", "经典直筒，轻微水洗。", 229),
    ("裤子", "lululemon 运动裤", "瑜伽健身都合适，S 码。", 399),
    ("外套", "始祖鸟 Beta 冲锋衣", "防水性能好，户外徒步必备。", 2599),
    ("外套", "波司登 羽绒服 170", "去年冬天买的，穿了几次。", 599),
    ("外套", "ZARA 风衣 卡其色", "春秋款，M 码，九成新。", 259),
    ("运动鞋", "Nike Air Force 1 42 码", "白色经典款，刷过，鞋底有磨损。", 369),
    ("运动鞋", "adidas Ultraboost 22", "跑步用了几十公里，缓震依旧。", 459),
    ("运动鞋", "New Balance 990v5 43 码", "美产，灰色，附鞋盒。", 899),
    ("皮鞋", "Clarks 德比鞋 41 码", "面试穿过两次。", 299),
    ("皮鞋", "红蜻蜓 商务皮鞋", "黑色正装鞋，全新。", 199),
    ("靴子", "Dr.Martens 1460 八孔靴", "已磨合好，好穿不磨脚。", 699),
    ("靴子", "UGG 雪地靴 37 码", "保暖，冬天必备。", 399),
    ("主机", "Nintendo Switch OLED", "白色，带两个 Joy-Con，无坏点。", 1899),
    ("主机", "PS5 光驱版", "国行，送一个手柄和两张游戏。", 3199),
    ("主机", "Xbox Series S", "小巧，适合入门，附原装手柄。", 1499),
    ("游戏卡带", "塞尔达传说 王国之泪", "卡带完好，中文版。", 279),
    ("游戏卡带", "宝可梦 朱", "通关了，转给有缘人。", 219),
    ("游戏卡带", "马力欧赛车 8 豪华版", "聚会必备，卡带无划痕。", 229),
    ("手柄", "Switch Pro 手柄", "摇杆无漂移。", 329),
    ("手柄", "DualSense 手柄 白色", "按键灵敏，附充电线。", 349),
    ("笔记本", "MacBook Air M1 8+256", "电池循环 120 次，外观九五新。", 4299),
    ("笔记本", "ThinkPad X1 Carbon 2021", "i7 16G，键盘手感好，商务本。", 4599),
    ("笔记本", "联想 拯救者 Y9000P", "RTX 3060 游戏本，散热正常。", 5299),
    ("台式机", "自组主机 i5-12400 + 3060", "办公游戏两用，无矿。", 3999),
    ("台式机", "Mac mini M2", "几乎全新，在保。", 3499),
    ("平板", "iPad Air 5 64G WiFi", "送笔和键盘套。", 3199),
    ("平板", "小米平板 6", "追剧神器，屏幕完美。", 1399),
    ("平板", "Kindle Paperwhite 5", "阅读器，带保护套。", 599),
    ("配件", "罗技 MX Master 3 鼠标", "办公神器，续航好。", 399),
    ("笔记本", "华为 MateBook 14", "2K 屏，轻薄办公。", 3299),
]

PALETTE = [(239, 83, 80), (66, 165, 245), (102, 187, 106), (255, 167, 38), (171, 71, 188)]


def _demo_image(seed: int) -> tuple[bytes, bytes, int, int]:
    rng = random.Random(seed)  # deterministic: the same demo every run
    width, height = 800, 800
    base = PALETTE[seed % len(PALETTE)]
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(60, 260)
        shade = tuple(min(255, c + rng.randrange(20, 90)) for c in base)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=shade)
    draw.rounded_rectangle((40, 680, 400, 760), radius=20, fill=(255, 255, 255))
    draw.text((60, 705), f"DEMO #{seed:03d}", fill=(60, 60, 60))
    main = io.BytesIO()
    image.save(main, "JPEG", quality=80)
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    thumb = io.BytesIO()
    image.save(thumb, "JPEG", quality=80)
    return main.getvalue(), thumb.getvalue(), width, height


class Command(BaseCommand):
    help = "Load demo users, categories and listings (safe to run again)."

    def handle(self, *args, **options):
        from django.core.files.storage import default_storage

        with transaction.atomic():
            users = []
            for spec in DEMO_USERS:
                user, _ = User.objects.get_or_create(
                    openid=spec["openid"],
                    defaults={"username": f"wx_{spec['openid']}", "nickname": spec["nickname"]},
                )
                users.append(user)
            sellers = [u for u in users if "seller" in (u.openid or "")]
            leaves = {}
            for root_order, (root_name, children) in enumerate(CATEGORIES.items()):
                root, _ = Category.objects.get_or_create(
                    parent=None, name=root_name, defaults={"sort_order": root_order}
                )
                for order, child in enumerate(children):
                    leaves[child], _ = Category.objects.get_or_create(
                        parent=root, name=child, defaults={"sort_order": order}
                    )
            # The seeded categories get generated icons (staff may upload real ones later).
            if give_generated_icons():
                invalidate_catalog_cache()
            now = timezone.now()
            created = 0
            for index, (leaf, title, description, yuan) in enumerate(ITEMS):
                seller = sellers[index % len(sellers)]
                if Listing.objects.filter(seller=seller, title=title).exists():
                    continue
                main, thumb, width, height = _demo_image(index)
                stem = f"demo/listing-{index:03d}"
                main_name = default_storage.save(f"{stem}.jpg", ContentFile(main))
                thumb_name = default_storage.save(f"{stem}_thumb.jpg", ContentFile(thumb))
                approved = now - timedelta(hours=len(ITEMS) - index)
                listing = Listing.objects.create(
                    seller=seller,
                    category=leaves[leaf],
                    title=title,
                    description=description,
                    price_fen=yuan * 100,
                    original_price_fen=yuan * 100 * 3 // 2,
                    shipping_fee_fen=DEMO_SHIPPING_FEN[index % len(DEMO_SHIPPING_FEN)],
                    city_code=DEMO_CITIES[index % len(DEMO_CITIES)],
                    condition=DEMO_CONDITIONS[index % len(DEMO_CONDITIONS)],
                    status=ListingStatus.ON_SALE,
                    approved_at=approved,
                    views=(index * 37) % 500,
                    cover=thumb_name,
                )
                ImageUpload.objects.create(
                    owner=seller,
                    file=main_name,
                    thumbnail=thumb_name,
                    width=width,
                    height=height,
                    format="jpeg",
                    size=len(main),
                    listing=listing,
                    position=0,
                    consumed_at=now,
                )
                created += 1
            if not Banner.objects.filter(title="开学季 数码好物").exists():
                main, _, _, _ = _demo_image(999)
                banner = Banner(
                    title="开学季 数码好物",
                    target_type="category",
                    target_category=Category.objects.get(parent=None, name="电脑"),
                    sort_order=0,
                )
                banner.image.save("demo-banner.jpg", ContentFile(main), save=False)
                banner.save()
        self.stdout.write(
            f"Demo data ready: {User.objects.filter(openid__startswith='demo-').count()} demo "
            f"users, {Category.objects.count()} categories, {created} new listings "
            f"({Listing.objects.filter(seller__openid__startswith='demo-').count()} in all)."
        )
